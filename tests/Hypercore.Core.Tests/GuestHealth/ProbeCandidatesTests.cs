using System.Net;
using Hypercore.GuestHealth;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Core.Tests.GuestHealth;

/// <summary>
/// Issue 15 (idle4): a guest-health tick visits only the records it can act on. Each case is checked against what a
/// real tick over the record does, so the filter cannot drift from the monitor.
/// </summary>
public sealed class ProbeCandidatesTests() : MonitorTestBase("hypercore-candidates-")
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    protected override GuestHealthMonitor CreateMonitor() =>
        NewMonitor(new GuestHealthOptions { AllowedCidrs = "10.0.0.0/8" }, null, () => [IPAddress.Parse("192.168.50.1")]);

    private static ProbeSpec ConsoleProbe() => new() { Console = new ConsoleProbe("READY"), PeriodSeconds = 1 };

    private MicroVm Record(
        string id, Phase phase = Phase.Stopped, string node = "node-a", ProbeSpec? readiness = null, ProbeSpec? startup = null,
        int? pid = null, bool deleting = false, params Condition[] conditions) =>
        new()
        {
            Uid = "uid-" + id,
            Spec = new MicroVmSpec { Id = id, Kernel = new KernelSpec { Image = "/k" }, ReadinessProbe = readiness, StartupProbe = startup },
            ResourceVersion = "0",
            CreatedAt = Start - TimeSpan.FromSeconds(2),
            Claimed = true,
            DeletionRequestedAt = deleting ? Start : null,
            Status = new MicroVmStatus
            {
                Phase = phase, Node = node, Pid = pid, BootTime = phase == Phase.Running ? Start : null, ConsoleLogPath = ConsoleLog,
                Conditions = conditions,
            },
        };

    private static Condition Cond(string type, ConditionStatus status) => new(type, status, "Test", "", Start, 0);

    /// <summary>Records a tick does nothing with: left out.</summary>
    private IEnumerable<(string Case, MicroVm Vm)> Idle()
    {
        yield return ("stopped, no probes", Record("a"));
        yield return ("running, no probes", Record("b", Phase.Running, pid: 100));
        yield return ("stopped, readiness probe, never ready", Record("c", readiness: ConsoleProbe()));
        yield return ("stopped, readiness probe, GuestReady False", Record("d", readiness: ConsoleProbe(),
            conditions: Cond(Conditions.GuestReady, ConditionStatus.False)));
        yield return ("running with a probe on another node", Record("e", Phase.Running, node: "node-b", readiness: ConsoleProbe(), pid: 100));
        yield return ("not yet claimed by a node", Record("f", Phase.Pending, node: "", readiness: ConsoleProbe()));
        yield return ("deleting, readiness probe, never ready", Record("g", Phase.Running, readiness: ConsoleProbe(), pid: 100, deleting: true));
        yield return ("running, probe, no pid yet", Record("h", Phase.Running, readiness: ConsoleProbe()));
    }

    /// <summary>Records a tick probes or writes: kept.</summary>
    private IEnumerable<(string Case, MicroVm Vm)> Active()
    {
        yield return ("running with a readiness probe", Record("p", Phase.Running, readiness: ConsoleProbe(), pid: 100));
        yield return ("running with a startup probe", Record("q", Phase.Running, startup: ConsoleProbe(), pid: 100));
        yield return ("stopped, still GuestReady True", Record("r", readiness: ConsoleProbe(), conditions: Cond(Conditions.GuestReady, ConditionStatus.True)));
        yield return ("probe removed, GuestReady left", Record("s", Phase.Running, pid: 100, conditions: Cond(Conditions.GuestReady, ConditionStatus.False)));
        yield return ("startup probe removed, GuestStarted left", Record("t", conditions: Cond(GuestHealthMonitor.ConditionGuestStarted, ConditionStatus.True)));
    }

    [Test]
    public async Task NeedsTick_False_ATickOverTheRecordWritesNothingAndTracksNothing()
    {
        foreach (var (name, vm) in Idle())
        {
            var seeded = Store.Seed(vm);
            Prober.NeedsTick(seeded).Should().BeFalse(name);
            var writes = Store.StatusWrites;
            for (var i = 0; i < 3; i++)
            {
                await Prober.TickAsync([seeded], CancellationToken.None);
                Clock.Advance(TimeSpan.FromSeconds(5));
            }

            Store.StatusWrites.Should().Be(writes, name);
            Prober.Tracked.Should().Be(0, name);
            (await Store.GetAsync(seeded.Key))!.ResourceVersion.Should().Be(seeded.ResourceVersion, name);
        }
    }

    [Test]
    public async Task NeedsTick_True_ATickOverTheRecordProbesOrWrites()
    {
        foreach (var (name, vm) in Active())
        {
            var seeded = Store.Seed(vm);
            Prober.NeedsTick(seeded).Should().BeTrue(name);
            var writes = Store.StatusWrites;
            await Prober.TickAsync([seeded], CancellationToken.None);
            (Store.StatusWrites > writes || Prober.Tracked > 0).Should().BeTrue(name);
            await Prober.TickAsync([], CancellationToken.None); // drops what the case left tracked
        }
    }

    [Test]
    public void Plan_EachCase_NamesTheWorkATickDoes()
    {
        var expected = new Dictionary<string, TickWork>
        {
            ["running with a readiness probe"] = TickWork.Probe,
            ["running with a startup probe"] = TickWork.Probe,
            ["stopped, still GuestReady True"] = TickWork.MarkNotReady,
            ["probe removed, GuestReady left"] = TickWork.ClearGuestReady,
            ["startup probe removed, GuestStarted left"] = TickWork.ClearGuestStarted,
        };
        foreach (var (name, vm) in Idle())
        {
            Prober.Plan(vm).Should().Be(TickWork.None, name);
        }

        foreach (var (name, vm) in Active())
        {
            Prober.Plan(vm).Should().Be(expected[name], name);
        }

        var both = Record("u", Phase.Running, readiness: ConsoleProbe(), pid: 100,
            conditions: Cond(GuestHealthMonitor.ConditionGuestStarted, ConditionStatus.True));
        Prober.Plan(both).Should().Be(TickWork.ClearGuestStarted | TickWork.Probe);
    }

    [Test]
    public async Task Plan_ChangedInItsOnePlace_NeedsTickTheTickAndTheCandidatesAllFollow()
    {
        // Another node's running, probed VM: by the monitor's rule a tick leaves it alone.
        var foreign = Store.Seed(Record("foreign", Phase.Running, node: "node-b", readiness: ConsoleProbe(), pid: 100));
        // This node's running, probed VM: by the rule a tick probes it.
        var local = Store.Seed(Record("local", Phase.Running, readiness: ConsoleProbe(), pid: 100));
        Prober.NeedsTick(foreign).Should().BeFalse();
        Prober.NeedsTick(local).Should().BeTrue();

        // One change, in the planner only: the node rule turned round.
        Prober.Planner = vm => GuestHealthMonitor.PlanFor(vm, vm.Status.Node == "node-b" ? "node-b" : "node-x");
        Prober.NeedsTick(foreign).Should().BeTrue();
        Prober.NeedsTick(local).Should().BeFalse();

        var writes = Store.StatusWrites;
        await Prober.TickAsync([foreign, local], CancellationToken.None);
        Prober.Tracked.Should().Be(1, "the tick probes the record the planner names, and only that one");
        Store.StatusWrites.Should().BeGreaterThan(writes, "the foreign record got a GuestReady verdict");
        (await Store.GetAsync(foreign.Key))!.Status.FindCondition(Conditions.GuestReady).Should().NotBeNull();
        (await Store.GetAsync(local.Key))!.Status.FindCondition(Conditions.GuestReady).Should().BeNull();

        using var informer = new MicroVmInformer(Store, Clock, Options.Create(new InformerOptions { ResyncInterval = TimeSpan.FromHours(1) }),
            NullLogger<MicroVmInformer>.Instance);
        await informer.StartAsync(CancellationToken.None);
        try
        {
            await informer.Synced.WaitAsync(Patience);
            using var candidates = new ProbeCandidates(informer, Prober);
            candidates.Snapshot().Select(v => v.Key).Should().Equal(foreign.Key);

            // Back to the monitor's own rule: the tick drops the foreign record's state and the candidates follow too.
            Prober.Planner = null;
            await Prober.TickAsync([foreign, local], CancellationToken.None);
            Prober.Tracked.Should().Be(1);
            Prober.NeedsTick(foreign).Should().BeFalse();
            using var again = new ProbeCandidates(informer, Prober);
            again.Snapshot().Select(v => v.Key).Should().Equal(local.Key);
        }
        finally
        {
            await informer.StopAsync(CancellationToken.None);
        }
    }

    [Test]
    public async Task Candidates_FollowTheInformer_ThousandsOfStoppedVmsAreNotVisited()
    {
        for (var i = 0; i < 2000; i++)
        {
            Store.Seed(Record($"stopped-{i}"));
        }

        var probed = Store.Seed(Record("probed", Phase.Running, readiness: ConsoleProbe(), pid: 100));
        using var informer = new MicroVmInformer(Store, Clock, Options.Create(new InformerOptions { ResyncInterval = TimeSpan.FromHours(1) }),
            NullLogger<MicroVmInformer>.Instance);
        await informer.StartAsync(CancellationToken.None);
        try
        {
            await informer.Synced.WaitAsync(Patience);
            using var candidates = new ProbeCandidates(informer, Prober);
            candidates.Snapshot().Select(v => v.Key).Should().Equal(probed.Key);

            // A stopped VM that is started with a probe joins; one whose record goes leaves.
            var started = (await Store.GetAsync(new VmKey("default", "stopped-7")))!;
            await Store.UpdateSpecAsync(started.Key, started.Spec with { ReadinessProbe = ConsoleProbe() }, started.ResourceVersion);
            started = (await Store.GetAsync(started.Key))!;
            await Store.UpdateStatusAsync(started.Key, started.Status with { Phase = Phase.Running, Pid = 200, BootTime = Start }, started.ResourceVersion);
            await Until(() => candidates.Count == 2);
            candidates.Snapshot().Select(v => v.Key).Should().BeEquivalentTo([probed.Key, started.Key]);

            await Store.RemoveAsync(probed.Key);
            await Until(() => candidates.Count == 1);
            candidates.Snapshot().Single().Key.Should().Be(started.Key);

            // A probed VM that stops without a GuestReady verdict has nothing left for a tick.
            var running = (await Store.GetAsync(started.Key))!;
            await Store.UpdateStatusAsync(running.Key, running.Status with { Phase = Phase.Stopped, Pid = null }, running.ResourceVersion);
            await Until(() => candidates.Count == 0);
            candidates.Snapshot().Should().BeEmpty();
        }
        finally
        {
            await informer.StopAsync(CancellationToken.None);
        }
    }

    [Test]
    public async Task Candidates_Disposed_StopFollowingTheInformer()
    {
        using var informer = new MicroVmInformer(Store, Clock, Options.Create(new InformerOptions { ResyncInterval = TimeSpan.FromHours(1) }),
            NullLogger<MicroVmInformer>.Instance);
        await informer.StartAsync(CancellationToken.None);
        try
        {
            await informer.Synced.WaitAsync(Patience);
            var candidates = new ProbeCandidates(informer, Prober);
            candidates.Dispose();
            var probed = Store.Seed(Record("probed", Phase.Running, readiness: ConsoleProbe(), pid: 100));
            await Until(() => informer.Get(probed.Key) is not null);
            candidates.Count.Should().Be(0);
        }
        finally
        {
            await informer.StopAsync(CancellationToken.None);
        }
    }

    private static async Task Until(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (!condition())
        {
            await Task.Delay(10, cts.Token);
        }
    }
}

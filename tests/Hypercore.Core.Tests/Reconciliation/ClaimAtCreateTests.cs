using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Store;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Reconciliation;

/// <summary>
/// Issue 15 (claim14): where the store claims with a status in one write, a new VM is stored already claimed, with the
/// status the reconciler's first pass would write with its claim (<see cref="IClaimAtCreate"/>). The first pass then
/// carries on as after its own claim: a Running VM costs one more write (Running), a Stopped one none. Neither reads its
/// version first when nothing is live for it (fifteenth pass): a Running VM's write is checked against its copy instead.
/// </summary>
public class ClaimAtCreateTests
{
    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private FakeTimeProvider _time = null!;
    private FakeCache _cache = null!;
    private StoreVersionCheck _versions = null!;
    private Reconciler _reconciler = null!;
    private CapturingLogger _log = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver();
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 20, 0, 0, TimeSpan.Zero));
        _cache = new FakeCache();
        _versions = new StoreVersionCheck(_store);
        _log = new CapturingLogger();
        _reconciler = NewReconciler();
    }

    /// <summary>A reconciler over the same store and driver (a second one: the daemon after a restart).</summary>
    private Reconciler NewReconciler(params IStartStep[] steps) =>
        new(_store, new DriverRegistry([_driver], "fake"), _time,
            Options.Create(new ReconcilerOptions { NodeName = "node-a", StopGracePeriod = TimeSpan.FromSeconds(7) }),
            _log, steps, cache: _cache, versions: _versions);

    private static MicroVmSpec Spec(string id, DesiredState state = DesiredState.Running) =>
        new() { Id = id, Namespace = "default", Provider = "fake", Kernel = new KernelSpec { Image = "/k" }, State = state };

    /// <summary>What the application layer does where the reconciler runs: ask it, then store the record claimed.</summary>
    private async Task<MicroVm> CreateClaimedAsync(MicroVmSpec spec)
    {
        var status = _reconciler.StatusAtCreate(spec);
        status.Should().NotBeNull();
        var created = await _store.CreateClaimedAsync(spec, status!);
        _cache.Put(created); // the informer's copy, as it follows the store
        return created;
    }

    /// <summary>Every event the store publishes while <paramref name="action"/> runs (<see cref="InMemoryStore.EventsDuring"/>).</summary>
    private Task<List<StoreEvent>> EventsDuring(Func<Task> action) => _store.EventsDuring(action, Spec("zz-end-marker", DesiredState.Stopped));

    [Test]
    public async Task StatusAtCreate_Running_IsWhatTheFirstPassClaimWrites()
    {
        var spec = Spec("a");
        var atCreate = _reconciler.StatusAtCreate(spec);
        var pending = await _store.CreateAsync(spec); // today's way: Pending, claimed by the first pass
        _driver.StartFailures["a"] = new DriverException("Boom", "no start"); // the pass ends after its claim

        var events = await EventsDuring(() => _reconciler.ReconcileAsync(pending.Key, CancellationToken.None));

        var claim = events[0].MicroVm!;
        claim.Claimed.Should().BeTrue();
        claim.Status.Phase.Should().Be(Phase.Provisioning);
        atCreate.Should().Be(claim.Status, "the Create carries the reconciler's own claim: phase, conditions, observed generation, node");
        atCreate!.Node.Should().Be("node-a");
        atCreate.ObservedGeneration.Should().Be(1);
    }

    [Test]
    public async Task StatusAtCreate_Stopped_IsWhatTheFirstPassStoppedWriteWrites()
    {
        var spec = Spec("a", DesiredState.Stopped);
        var atCreate = _reconciler.StatusAtCreate(spec);
        var pending = await _store.CreateAsync(spec);

        var events = await EventsDuring(() => _reconciler.ReconcileAsync(pending.Key, CancellationToken.None));

        events.Should().ContainSingle();
        atCreate.Should().Be(events[0].MicroVm!.Status);
        atCreate!.Phase.Should().Be(Phase.Stopped);
    }

    [Test]
    public void StatusAtCreate_WhereTheFirstPassWouldNotClaimAtOnce_IsNull()
    {
        _reconciler.StatusAtCreate(Spec("a") with { NodeName = "node-b" }).Should().BeNull("another node's VM is never claimed here");
        _reconciler.StatusAtCreate(Spec("a") with { Provider = "nope" }).Should().BeNull("no such driver: the pass fails it unclaimed");
        _reconciler.StatusAtCreate(Spec("a") with { Metadata = new Dictionary<string, string> { ["k"] = "v" } })
            .Should().BeNull("the fake has no metadata service: the pass refuses it before any claim");
        _reconciler.StatusAtCreate(Spec("a") with { NodeName = "node-a" }).Should().NotBeNull("this node's own name is this node");

        _store.ClaimWithStatusIsOneWrite = false; // Kubernetes: the finalizer is a write of its own
        _reconciler.StatusAtCreate(Spec("a")).Should().BeNull();
        _reconciler.StatusAtCreate(Spec("a", DesiredState.Stopped)).Should().BeNull();
    }

    [Test]
    public async Task FirstPass_ClaimedAtCreate_WritesOnlyRunning()
    {
        var vm = await CreateClaimedAsync(Spec("a"));
        vm.Claimed.Should().BeTrue();
        vm.Status.Phase.Should().Be(Phase.Provisioning);
        var writes = _store.StatusWrites;

        var events = await EventsDuring(async () =>
            (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Poll));

        events.Select(e => e.MicroVm!.Status.Phase).Should().Equal([Phase.Running], "the claim and Provisioning were the Create's write");
        _store.StatusWrites.Should().Be(writes + 1);
        _driver.Calls.Should().Equal("inspect:a", "stop(0):a", "start:a");
        _versions.Checks.Should().Be(0, "the Running write, checked against the copy's version, is the check (fifteenth pass)");
        _reconciler.UncheckedReads.Should().Be(1);
        var running = (await _store.GetAsync(vm.Key))!;
        running.Status.Phase.Should().Be(Phase.Running);
        running.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be("Running");
    }

    [Test]
    public async Task FirstPass_ClaimedAtCreate_StaleCopy_ItsWriteConflicts_AndTheNewerVersionStopsWhatItStarted()
    {
        var vm = await CreateClaimedAsync(Spec("a"));
        var stopped = await _store.UpdateSpecAsync(vm.Key, vm.Spec with { State = DesiredState.Stopped }, vm.ResourceVersion); // not yet in the cache

        // The first pass starts from the copy (the Create's spec) and its Running write, checked against it, conflicts.
        (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Backoff);
        _driver.CallCount("start").Should().Be(1);
        var stored = (await _store.GetAsync(vm.Key))!;
        stored.ResourceVersion.Should().Be(stopped.ResourceVersion, "a stale copy's write changes nothing");
        stored.Status.Phase.Should().Be(Phase.Provisioning);
        // The pass logged its phase change before the write; the log then says that write was not stored.
        _log.Entries.Select(e => (e.Level, e.Id)).Should().ContainInOrder((LogLevel.Information, 1000), (LogLevel.Information, 1002));
        _log.Entries.Single(e => e.Id == 1002).Message.Should().Contain("not stored");

        // The watch brings the newer version; its pass finds the started hypervisor by uid and stops it.
        _cache.Put(stored);
        (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Done);
        _driver.Live(vm.Uid).Should().BeNull("nothing is left running for its uid");
        (await _store.GetAsync(vm.Key))!.Status.Phase.Should().Be(Phase.Stopped);
    }

    [Test]
    public async Task FirstPass_ClaimedAtCreate_DeletedSince_TheDeletionPassLeavesNothing()
    {
        var vm = await CreateClaimedAsync(Spec("a"));
        var marked = await _store.MarkForDeletionAsync(vm.Key); // not yet in the cache

        (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Backoff);
        _driver.CallCount("start").Should().Be(1);

        _cache.Put(marked);
        (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Done);
        _driver.CallCount("cleanup").Should().Be(1);
        _driver.Live(vm.Uid).Should().BeNull("nothing is left running for its uid");
        (await _store.GetAsync(vm.Key)).Should().BeNull();
    }

    [Test]
    public async Task FirstPass_ClaimedAtCreate_SomethingLive_IsCheckedBeforeItIsTouched()
    {
        var vm = await CreateClaimedAsync(Spec("a")); // a pass started it, and the daemon stopped before its Running write
        _driver.SetLive(vm.Uid, LiveState.Running, pid: 4242);

        (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Poll);

        _versions.Checks.Should().Be(1, "what is found is touched only after the version check");
        _driver.CallCount("start").Should().Be(0, "it is adopted, not started twice");
        var running = (await _store.GetAsync(vm.Key))!;
        running.Status.Phase.Should().Be(Phase.Running);
        running.Status.Pid.Should().Be(4242);
    }

    [Test]
    public async Task FirstPass_ClaimedAtCreate_SomethingLive_StaleCopy_ActsOnTheStoredRecord()
    {
        var vm = await CreateClaimedAsync(Spec("a"));
        _driver.SetLive(vm.Uid, LiveState.Running, pid: 4242);
        await _store.UpdateSpecAsync(vm.Key, vm.Spec with { State = DesiredState.Stopped }, vm.ResourceVersion); // not yet in the cache

        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        _reconciler.StaleCopies.Should().Be(1);
        _driver.CallCount("start").Should().Be(0);
        (await _store.GetAsync(vm.Key))!.Status.Phase.Should().Be(Phase.Stopped, "the store says Stopped: what was found is stopped");
    }

    [Test]
    public async Task Restart_ClaimedProvisioningRecordWithNoHypervisor_StartsIt()
    {
        var vm = await CreateClaimedAsync(Spec("a")); // the daemon stopped right after the Create's write
        var afterRestart = NewReconciler();

        (await afterRestart.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Poll);

        _driver.CallCount("start").Should().Be(1);
        (await _store.GetAsync(vm.Key))!.Status.Phase.Should().Be(Phase.Running);
    }

    [Test]
    public async Task FirstPass_ClaimedAtCreate_AdmissionWaits_BackToPendingThenStartsLater()
    {
        var admit = false;
        var step = new GateStep(() => admit);
        var reconciler = NewReconciler(step);
        var vm = await CreateClaimedAsync(Spec("a"));

        var waited = await reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        waited.Outcome.Should().Be(ReconcileOutcome.After);
        var pending = (await _store.GetAsync(vm.Key))!;
        pending.Status.Phase.Should().Be(Phase.Pending);
        pending.Claimed.Should().BeTrue();
        pending.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be("Admitted");
        _driver.CallCount("start").Should().Be(0);

        admit = true;
        _cache.Put(pending);
        var events = await EventsDuring(() => reconciler.ReconcileAsync(vm.Key, CancellationToken.None));

        events.Select(e => e.MicroVm!.Status.Phase).Should().Equal([Phase.Provisioning, Phase.Running], "as after the reconciler's own claim");
    }

    [Test]
    public async Task Delete_JustCreatedClaimedRecord_CleansUpAndRemoves()
    {
        var vm = await CreateClaimedAsync(Spec("a"));
        var marked = await _store.MarkForDeletionAsync(vm.Key);
        _cache.Put(marked);

        (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Done);

        _driver.Calls.Should().Equal("stop(7):a", "cleanup:a");
        (await _store.GetAsync(vm.Key)).Should().BeNull();
    }

    [Test]
    public async Task FirstPass_ClaimedStoppedAtCreate_NothingLive_WritesNothing()
    {
        var vm = await CreateClaimedAsync(Spec("a", DesiredState.Stopped));
        vm.Status.Phase.Should().Be(Phase.Stopped);

        var events = await EventsDuring(async () =>
            (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Done));

        events.Should().BeEmpty("the Create's write was the claim and Stopped");
        _driver.Calls.Should().Equal("inspect:a");
        _versions.Checks.Should().Be(0, "a pass that writes and touches nothing needs no version check");
        _reconciler.UncheckedReads.Should().Be(1);
    }

    [Test]
    public async Task FirstPass_ClaimedStoppedAtCreate_SomethingLive_IsStoppedAndReported()
    {
        var vm = await CreateClaimedAsync(Spec("a", DesiredState.Stopped));
        _driver.SetLive(vm.Uid, LiveState.Running, pid: 4242);

        var events = await EventsDuring(async () =>
            (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Done));

        _versions.Checks.Should().Be(1, "what is found is touched only after the version check");
        _driver.Calls.Should().Equal("inspect:a", "stop(7):a");
        events.Select(e => e.MicroVm!.Status.Phase).Should().Equal([Phase.Stopping, Phase.Stopped], "the Stopped written at create is corrected by what was found");
    }

    [Test]
    public async Task FirstPass_ClaimedStoppedAtCreate_SomethingLive_StaleCopy_ActsOnTheStoredRecord()
    {
        var vm = await CreateClaimedAsync(Spec("a", DesiredState.Stopped));
        _driver.SetLive(vm.Uid, LiveState.Running, pid: 4242);
        await _store.UpdateSpecAsync(vm.Key, vm.Spec with { State = DesiredState.Running }, vm.ResourceVersion); // not yet in the cache

        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        _reconciler.StaleCopies.Should().Be(1);
        _driver.Calls.Should().NotContain(c => c.StartsWith("stop(", StringComparison.Ordinal), "the copy said Stopped; the store says Running");
        (await _store.GetAsync(vm.Key))!.Status.Phase.Should().Be(Phase.Running);
    }

    /// <summary>A start step that makes the VM wait until <paramref name="admitted"/> says so (as admission does).</summary>
    private sealed class GateStep(Func<bool> admitted) : IStartStep
    {
        public string Name => "gate";

        public int Order => 100;

        public Task<StartStepResult> PrepareAsync(StartContext context, CancellationToken cancellationToken) =>
            Task.FromResult(admitted()
                ? StartStepResult.Proceed()
                : StartStepResult.Wait("Admitted", "waiting for room on the node", TimeSpan.FromSeconds(1)));

        public Task ReleaseAsync(MicroVm vm, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class FakeCache : IMicroVmCache
    {
        private readonly Dictionary<VmKey, MicroVm> _items = [];

        public void Put(MicroVm vm) => _items[vm.Key] = vm;

        public MicroVm? Get(VmKey key) => _items.GetValueOrDefault(key);
    }

    /// <summary>The check as a store implements it: the stored record's version, compared.</summary>
    private sealed class StoreVersionCheck(IMicroVmStore store) : IResourceVersionCheck
    {
        public int Checks { get; private set; }

        public async ValueTask<bool> IsCurrentAsync(VmKey key, string resourceVersion, CancellationToken cancellationToken = default)
        {
            Checks++;
            return (await store.GetAsync(key, cancellationToken))?.ResourceVersion == resourceVersion;
        }
    }

    /// <summary>The reconciler's log lines: level, event id and text.</summary>
    private sealed class CapturingLogger : ILogger<Reconciler>
    {
        public List<(LogLevel Level, int Id, string Message)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Entries)
            {
                Entries.Add((logLevel, eventId.Id, formatter(state, exception)));
            }
        }
    }
}

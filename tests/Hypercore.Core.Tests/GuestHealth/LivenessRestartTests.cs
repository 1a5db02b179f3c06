using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.GuestHealth;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.GuestHealth;

/// <summary>What the reconciler does with a liveness verdict: end the VM, then its restart policy.</summary>
public sealed class LivenessRestartTests
{
    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private FakeTimeProvider _time = null!;
    private LivenessSignals _signals = null!;
    private Reconciler _reconciler = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver();
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
        _signals = new LivenessSignals();
        _reconciler = new Reconciler(
            _store, new DriverRegistry([_driver], "fake"), _time, Options.Create(new ReconcilerOptions { NodeName = "node-a" }),
            NullLogger<Reconciler>.Instance, [new GuestHealthStartStep(_time)], _signals);
    }

    private async Task<MicroVm> Running(RestartPolicy policy)
    {
        var vm = await _store.CreateAsync(new MicroVmSpec
        {
            Id = "a", Kernel = new KernelSpec { Image = "/k" }, RestartPolicy = policy,
            LivenessProbe = new ProbeSpec { Console = new ConsoleProbe("beat"), PeriodSeconds = 1 },
        });
        (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Poll);
        return (await _store.GetAsync(vm.Key))!;
    }

    private void Fail(MicroVm vm) =>
        _signals.Report(vm.Key, new LivenessFailure(vm.Uid, vm.Status.BootTime, "console /beat/", "liveness probe console /beat/ failed 3 times in a row: no beat"));

    [Test]
    public async Task LivenessFailed_RestartAlways_KilledAndStartedAgainWithRestartCountOne()
    {
        var vm = await Running(RestartPolicy.Always);
        var firstPid = vm.Status.Pid;
        Fail(vm);
        _driver.Calls.Clear();

        (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Poll);

        var after = (await _store.GetAsync(vm.Key))!;
        _driver.Calls.Should().Equal("inspect:a", "stop(0):a", "stop(0):a", "start:a");
        after.Status.Phase.Should().Be(Phase.Running);
        after.Status.RestartCount.Should().Be(1);
        after.Status.Pid.Should().NotBe(firstPid);
    }

    [Test]
    public async Task LivenessFailed_RestartNever_FailedWithTheProbesMessageAndStaysDown()
    {
        var vm = await Running(RestartPolicy.Never);
        Fail(vm);

        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        var after = (await _store.GetAsync(vm.Key))!;

        after.Status.Phase.Should().Be(Phase.Failed);
        var ready = after.Status.FindCondition(Conditions.Ready)!;
        ready.Reason.Should().Be(Reconciler.ReasonLivenessProbeFailed);
        ready.Message.Should().Contain("liveness probe console /beat/ failed 3 times in a row: no beat").And.Contain("restartPolicy Never");

        _driver.Calls.Clear();
        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        _driver.CallCount("start").Should().Be(0, "restartPolicy Never keeps it down on the next pass too");
    }

    [Test]
    public async Task NoVerdict_RunningVm_LeftAlone()
    {
        var vm = await Running(RestartPolicy.Always);
        _driver.Calls.Clear();

        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        _driver.Calls.Should().Equal("inspect:a");
    }

    [Test]
    public async Task Start_WithProbes_RecordsTheConsoleOffsetOfTheBoot()
    {
        var vm = await Running(RestartPolicy.Always);

        vm.Status.ConsoleBootOffset.Should().Be(0, "the fake driver's console file does not exist");
    }
}

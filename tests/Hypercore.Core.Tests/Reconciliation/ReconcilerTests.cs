using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Reconciliation;

/// <summary>One reconcile pass: each desired/observed pair leads to the right driver calls and status.</summary>
public class ReconcilerTests
{
    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private FakeTimeProvider _time = null!;
    private Reconciler _reconciler = null!;
    private ReconcilerOptions _options = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver();
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
        _options = new ReconcilerOptions { NodeName = "node-a", StopGracePeriod = TimeSpan.FromSeconds(7) };
        _reconciler = NewReconciler(_driver);
    }

    private Reconciler NewReconciler(params IHypervisorDriver[] drivers) =>
        new(_store, new DriverRegistry(drivers, "fake"), _time, Options.Create(_options), NullLogger<Reconciler>.Instance);

    private static MicroVmSpec Spec(string id, DesiredState state = DesiredState.Running, RestartPolicy policy = RestartPolicy.Always) =>
        new() { Id = id, Kernel = new KernelSpec { Image = "/k" }, State = state, RestartPolicy = policy };

    private async Task<MicroVm> Reconcile(MicroVm vm, ReconcileOutcome expected = ReconcileOutcome.Poll)
    {
        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        result.Outcome.Should().Be(expected);
        return (await _store.GetAsync(vm.Key))!;
    }

    private async Task<MicroVm> SetState(MicroVm vm, DesiredState state)
    {
        var current = (await _store.GetAsync(vm.Key))!;
        return await _store.UpdateSpecAsync(vm.Key, current.Spec with { State = state }, current.ResourceVersion);
    }

    [Test]
    public async Task DesiredRunning_NothingLive_StartsAndReportsRunning()
    {
        var vm = await _store.CreateAsync(Spec("a"));

        var after = await Reconcile(vm);

        _driver.Calls.Should().Equal("inspect:a", "stop(0):a", "start:a");
        after.Status.Phase.Should().Be(Phase.Running);
        after.Status.Pid.Should().Be(_driver.Live(vm.Uid)!.Pid);
        after.Status.Node.Should().Be("node-a");
        after.Status.ObservedGeneration.Should().Be(1);
        after.Status.FindCondition(Conditions.Ready)!.Status.Should().Be(ConditionStatus.True);
        after.Status.FindCondition(Conditions.Synchronized)!.Status.Should().Be(ConditionStatus.True);
        after.Claimed.Should().BeTrue("the record is claimed before any hypervisor work");
    }

    [Test]
    public async Task DesiredRunning_AlreadyRunning_AdoptsWithoutAnyChange()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        _driver.SetLive(vm.Uid, LiveState.Running, pid: 4242);

        var after = await Reconcile(vm);

        _driver.Calls.Should().Equal("inspect:a");
        after.Status.Phase.Should().Be(Phase.Running);
        after.Status.Pid.Should().Be(4242);
    }

    [Test]
    public async Task SecondPass_NoChange_WritesNoStatus()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        await Reconcile(vm);
        var writes = _store.StatusWrites;

        await Reconcile(vm);

        _store.StatusWrites.Should().Be(writes, "status is written only when it changed");
    }

    [Test]
    public async Task DesiredPaused_Running_Pauses()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        await Reconcile(vm);
        vm = await SetState(vm, DesiredState.Paused);

        var after = await Reconcile(vm);

        _driver.CallCount("pause").Should().Be(1);
        _driver.Live(vm.Uid)!.State.Should().Be(LiveState.Paused);
        after.Status.Phase.Should().Be(Phase.Paused);
        after.Status.FindCondition(Conditions.Paused)!.Status.Should().Be(ConditionStatus.True);
        after.Status.FindCondition(Conditions.Ready)!.Status.Should().Be(ConditionStatus.False, "Ready is False while paused");
        after.Status.ObservedGeneration.Should().Be(2);
    }

    [Test]
    public async Task DesiredPaused_NothingLive_StartsThenPauses()
    {
        var vm = await _store.CreateAsync(Spec("a", DesiredState.Paused));

        var after = await Reconcile(vm);

        _driver.Calls.Should().Equal("inspect:a", "stop(0):a", "start:a", "pause:a");
        after.Status.Phase.Should().Be(Phase.Paused);
    }

    [Test]
    public async Task DesiredRunning_HypervisorCreatedButNeverBooted_IsClearedAndStarted()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        _driver.SetLive(vm.Uid, LiveState.Created);

        var after = await Reconcile(vm);

        _driver.Calls.Should().Equal("inspect:a", "stop(0):a", "start:a");
        after.Status.Phase.Should().Be(Phase.Running);
    }

    [Test]
    public async Task DesiredRunning_Paused_Resumes()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        _driver.SetLive(vm.Uid, LiveState.Paused);

        var after = await Reconcile(vm);

        _driver.Calls.Should().Equal("inspect:a", "resume:a");
        after.Status.Phase.Should().Be(Phase.Running);
        after.Status.FindCondition(Conditions.Paused)!.Status.Should().Be(ConditionStatus.False);
    }

    [Test]
    public async Task DesiredStopped_Running_StopsGracefullyWithTheGracePeriod()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        await Reconcile(vm);
        vm = await SetState(vm, DesiredState.Stopped);

        var after = await Reconcile(vm, ReconcileOutcome.Done);

        _driver.Calls.Should().ContainInOrder("inspect:a", "stop(7):a");
        _driver.Live(vm.Uid).Should().BeNull();
        after.Status.Phase.Should().Be(Phase.Stopped);
        after.Status.Pid.Should().BeNull();
    }

    [Test]
    public async Task DesiredStopped_NothingLive_OnlyReportsStopped()
    {
        var vm = await _store.CreateAsync(Spec("a", DesiredState.Stopped));

        var after = await Reconcile(vm, ReconcileOutcome.Done);

        _driver.Calls.Should().Equal("inspect:a");
        after.Status.Phase.Should().Be(Phase.Stopped);
    }

    [Test]
    public async Task Deleting_StopsCleansUpAndRemovesTheRecord()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        await Reconcile(vm);
        await _store.MarkForDeletionAsync(vm.Key);

        await Reconcile(vm, ReconcileOutcome.Done);

        _driver.Calls.Should().ContainInOrder("stop(7):a", "cleanup:a");
        (await _store.GetAsync(vm.Key)).Should().BeNull();
    }

    [Test]
    public async Task StartFails_ReportsFailedWithTheDriverMessage_AndBacksOff_ThenRecovers()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        _driver.StartFailures["a"] = new DriverException("KernelNotFound", "kernel image /k does not exist");

        var failed = await Reconcile(vm, ReconcileOutcome.Backoff);

        failed.Status.Phase.Should().Be(Phase.Failed);
        var sync = failed.Status.FindCondition(Conditions.Synchronized)!;
        sync.Status.Should().Be(ConditionStatus.False);
        sync.Reason.Should().Be("KernelNotFound");
        sync.Message.Should().Be("kernel image /k does not exist");

        _driver.StartFailures.Clear();
        var recovered = await Reconcile(vm);
        recovered.Status.Phase.Should().Be(Phase.Running);
        recovered.Status.FindCondition(Conditions.Synchronized)!.Status.Should().Be(ConditionStatus.True);
    }

    [Test]
    public async Task UnexpectedException_IsRecordedInSynchronizedCondition_AndBacksOff()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        _driver.StartFailures["a"] = new IOException("disk full");

        var after = await Reconcile(vm, ReconcileOutcome.Backoff);

        var sync = after.Status.FindCondition(Conditions.Synchronized)!;
        sync.Status.Should().Be(ConditionStatus.False);
        sync.Message.Should().Be("disk full");
    }

    [TestCase(RestartPolicy.Always, ExitKind.Crashed, true, Phase.Running)]
    [TestCase(RestartPolicy.Always, ExitKind.GuestShutdown, true, Phase.Running)]
    [TestCase(RestartPolicy.OnFailure, ExitKind.Crashed, true, Phase.Running)]
    [TestCase(RestartPolicy.OnFailure, ExitKind.GuestShutdown, false, Phase.Stopped)]
    [TestCase(RestartPolicy.Never, ExitKind.Crashed, false, Phase.Failed)]
    [TestCase(RestartPolicy.Never, ExitKind.GuestShutdown, false, Phase.Stopped)]
    public async Task RunningVmExits_RestartPolicyDecides(RestartPolicy policy, ExitKind exit, bool restarted, Phase phase)
    {
        var vm = await _store.CreateAsync(Spec("a", policy: policy));
        await Reconcile(vm);
        _driver.SetLive(vm.Uid, LiveState.Exited, exit);

        var after = await Reconcile(vm, restarted ? ReconcileOutcome.Poll : ReconcileOutcome.Done);

        _driver.CallCount("start").Should().Be(restarted ? 2 : 1);
        after.Status.Phase.Should().Be(phase);
        after.Status.RestartCount.Should().Be(restarted ? 1 : 0);
    }

    [TestCase(RestartPolicy.Never, ExitKind.Crashed)]
    [TestCase(RestartPolicy.OnFailure, ExitKind.GuestShutdown)]
    public async Task VmThatStayedDownByPolicy_IsNotStartedByLaterPasses_UntilStartedAgain(RestartPolicy policy, ExitKind exit)
    {
        var vm = await _store.CreateAsync(Spec("a", policy: policy));
        await Reconcile(vm);
        _driver.SetLive(vm.Uid, LiveState.Exited, exit);
        await Reconcile(vm, ReconcileOutcome.Done); // reaped: the driver now reports NotFound

        await Reconcile(vm, ReconcileOutcome.Done);
        await Reconcile(vm, ReconcileOutcome.Done);
        _driver.CallCount("start").Should().Be(1, "the restart policy said to stay down");

        await SetState(vm, DesiredState.Stopped);
        await Reconcile(vm, ReconcileOutcome.Done);
        await SetState(vm, DesiredState.Running);
        var started = await Reconcile(vm);
        started.Status.Phase.Should().Be(Phase.Running);
        _driver.CallCount("start").Should().Be(2);
    }

    [Test]
    public async Task ProcessVanished_CountsAsCrash_AndIsRestarted()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        await Reconcile(vm);
        var firstPid = (await _store.GetAsync(vm.Key))!.Status.Pid;
        await _driver.CleanupAsync(vm); // the process and its files are gone

        var after = await Reconcile(vm);

        after.Status.Phase.Should().Be(Phase.Running);
        after.Status.Pid.Should().NotBe(firstPid);
        after.Status.RestartCount.Should().Be(1);
    }

    [Test]
    public async Task CrashesSoonAfterBoot_BackOffWithCrashLoopBackOff()
    {
        _options.BackoffBase = TimeSpan.FromSeconds(1);
        var vm = await _store.CreateAsync(Spec("a"));
        await Reconcile(vm); // boot time: now (fake driver reports UnixEpoch; use status)
        await Crash(vm);
        await Reconcile(vm); // first crash: restarted at once
        await Crash(vm);

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.After);
        result.Delay.Should().Be(TimeSpan.FromSeconds(2));
        var looping = (await _store.GetAsync(vm.Key))!;
        looping.Status.Phase.Should().Be(Phase.CrashLoopBackOff);
        looping.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be("CrashLoopBackOff");

        var restarted = await Reconcile(vm); // the delay passed: start again
        restarted.Status.Phase.Should().Be(Phase.Running);
        restarted.Status.RestartCount.Should().Be(2);
        _driver.CallCount("start").Should().Be(3);
    }

    private async Task Crash(MicroVm vm)
    {
        // The fake reports a boot time of the Unix epoch; make the run look short by pinning status.BootTime to now.
        var current = (await _store.GetAsync(vm.Key))!;
        await _store.UpdateStatusAsync(vm.Key, current.Status with { BootTime = _time.GetUtcNow() }, current.ResourceVersion);
        _driver.SetLive(vm.Uid, LiveState.Exited, ExitKind.Crashed);
    }

    [Test]
    public async Task UnknownProvider_FailsWithProviderUnavailable_NamingTheChoices_AndCallsNoDriver()
    {
        var vm = await _store.CreateAsync(Spec("a") with { Provider = "firecracker" });

        var after = await Reconcile(vm, ReconcileOutcome.Done);

        _driver.Calls.Should().BeEmpty();
        after.Status.Phase.Should().Be(Phase.Failed);
        var ready = after.Status.FindCondition(Conditions.Ready)!;
        ready.Reason.Should().Be(Conditions.ReasonProviderUnavailable);
        ready.Message.Should().Contain("firecracker").And.Contain("fake");
    }

    [Test]
    public async Task UnavailableProvider_ShowsTheDriversDetailInStatus_AndRetries()
    {
        _driver.Availability = DriverAvailability.Unavailable("qemu binary not found: tried /nope/qemu");
        var vm = await _store.CreateAsync(Spec("a"));

        var after = await Reconcile(vm, ReconcileOutcome.Backoff);

        _driver.CallCount("start").Should().Be(0);
        after.Status.Phase.Should().Be(Phase.Failed);
        after.Status.FindCondition(Conditions.Synchronized)!.Message.Should().Be("qemu binary not found: tried /nope/qemu");
        after.Status.FindCondition(Conditions.Synchronized)!.Reason.Should().Be("ProviderUnavailable");
    }

    [Test]
    public async Task PauseOnAProviderThatCannotPause_IsRefusedWithACondition_BeforeAnyDriverCall()
    {
        var noPause = new FakeDriver("fake", DriverCapabilities.GracefulStop);
        _reconciler = NewReconciler(noPause);
        var vm = await _store.CreateAsync(Spec("a", DesiredState.Paused));

        var after = await Reconcile(vm, ReconcileOutcome.Done);

        noPause.Calls.Should().BeEmpty();
        after.Status.Phase.Should().Be(Phase.Failed);
        after.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be(Conditions.ReasonUnsupported);
        after.Status.FindCondition(Conditions.Ready)!.Message.Should().Be("provider \"fake\" cannot pause a VM");
    }

    [Test]
    public async Task UnknownLiveState_ChangesNothing()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        await Reconcile(vm);
        _driver.InspectOverride = _ => LiveState.Unknown;
        var before = (await _store.GetAsync(vm.Key))!;

        var after = await Reconcile(vm);

        after.Should().Be(before);
        _driver.CallCount("start").Should().Be(1);
    }

    [Test]
    public async Task AnotherNodesVm_IsLeftAlone()
    {
        var vm = await _store.CreateAsync(Spec("a") with { NodeName = "node-b" });

        var after = await Reconcile(vm, ReconcileOutcome.Done);

        _driver.Calls.Should().BeEmpty();
        after.Status.Should().Be(MicroVmStatus.Initial);
    }

    [Test]
    public async Task MissingRecord_IsDone()
    {
        var result = await _reconciler.ReconcileAsync(new VmKey("default", "gone"), CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Done);
        _driver.Calls.Should().BeEmpty();
    }

    [Test]
    public async Task Inspect_HypervisorStopsAnswering_IsUnknownAfterTheInspectTimeout_AndNothingIsKilled()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        vm = await Reconcile(vm);
        _driver.InspectGates["a"] = new TaskCompletionSource(); // never answers
        var inspections = _driver.CallCount("inspect");

        var pass = _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        await Until(() => _driver.CallCount("inspect") > inspections);
        pass.IsCompleted.Should().BeFalse("the inspection is still waiting for the hypervisor");
        _time.Advance(_options.InspectTimeout);
        var result = await pass.WaitAsync(TimeSpan.FromSeconds(20));

        result.Outcome.Should().Be(ReconcileOutcome.Poll, "an unknown state is looked at again, never taken for dead");
        _driver.CallCount("stop(0)").Should().Be(1, "only the stop before the first start");
        var after = (await _store.GetAsync(vm.Key))!;
        after.Status.Phase.Should().Be(Phase.Running);
        after.Status.FindCondition(Conditions.Unresponsive).Should().BeNull();
    }

    [TestCase(RestartPolicy.Always)]
    [TestCase(RestartPolicy.OnFailure)]
    public async Task Unknown_LongerThanUnresponsiveAfter_KillsAndRestarts_WithAnUnresponsiveCondition(RestartPolicy policy)
    {
        var vm = await _store.CreateAsync(Spec("a", policy: policy));
        vm = await Reconcile(vm);
        var firstPid = vm.Status.Pid;
        _driver.InspectOverride = _ => LiveState.Unknown;

        await Reconcile(vm);
        _time.Advance(_options.UnresponsiveAfter - TimeSpan.FromSeconds(1));
        var stillWaiting = await Reconcile(vm);
        stillWaiting.Status.Phase.Should().Be(Phase.Running, "not yet Unresponsive");
        _driver.CallCount("start").Should().Be(1);

        _time.Advance(TimeSpan.FromSeconds(1));
        // Still silent at the threshold; the restarted hypervisor answers again.
        _driver.InspectOverride = id => _driver.CallCount("start") == 1 ? LiveState.Unknown : null;
        var restarted = await Reconcile(vm);

        _driver.Calls.Should().ContainInOrder("stop(0):a", "start:a");
        _driver.CallCount("start").Should().Be(2);
        restarted.Status.Phase.Should().Be(Phase.Running);
        restarted.Status.RestartCount.Should().Be(1);
        restarted.Status.Pid.Should().NotBe(firstPid);
        var unresponsive = restarted.Status.FindCondition(Conditions.Unresponsive)!;
        unresponsive.Status.Should().Be(ConditionStatus.True);
        unresponsive.Message.Should().Contain("has not answered for 60 s").And.Contain("killed it");

        var recovered = await Reconcile(restarted);
        recovered.Status.FindCondition(Conditions.Unresponsive)!.Status.Should().Be(ConditionStatus.False, "the new hypervisor answers");
    }

    [Test]
    public async Task Unresponsive_RestartPolicyNever_IsKilledAndLeftFailed()
    {
        var vm = await _store.CreateAsync(Spec("a", policy: RestartPolicy.Never));
        vm = await Reconcile(vm);
        _driver.InspectOverride = _ => LiveState.Unknown;
        await Reconcile(vm);
        _time.Advance(_options.UnresponsiveAfter);

        var failed = await Reconcile(vm, ReconcileOutcome.Done);

        _driver.CallCount("start").Should().Be(1, "Never means no restart");
        _driver.Live(vm.Uid).Should().BeNull("the frozen hypervisor was killed");
        failed.Status.Phase.Should().Be(Phase.Failed);
        failed.Status.Pid.Should().BeNull();
        var ready = failed.Status.FindCondition(Conditions.Ready)!;
        ready.Reason.Should().Be(Conditions.Unresponsive);
        ready.Message.Should().Contain("stopped answering").And.Contain("restartPolicy Never");

        _driver.InspectOverride = null;
        var later = await Reconcile(failed, ReconcileOutcome.Done);
        _driver.CallCount("start").Should().Be(1, "it stays down for this generation");
        later.Status.FindCondition(Conditions.Unresponsive)!.Status.Should().Be(ConditionStatus.True, "a VM that is gone did not start answering");
    }

    private static async Task Until(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!condition())
        {
            await Task.Delay(10, cts.Token);
        }
    }
}

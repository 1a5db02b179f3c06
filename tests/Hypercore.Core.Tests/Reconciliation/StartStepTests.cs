using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Reconciliation;

/// <summary>The reconciler runs features' start steps before the driver, in order, and releases them on delete.</summary>
public class StartStepTests
{
    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private FakeTimeProvider _time = null!;
    private List<string> _log = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver();
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero));
        _log = [];
    }

    private Reconciler NewReconciler(params IStartStep[] steps) =>
        new(_store, new DriverRegistry([_driver], "fake"), _time, Options.Create(new ReconcilerOptions { NodeName = "n" }),
            NullLogger<Reconciler>.Instance, steps);

    private static MicroVmSpec Spec(string id) => new() { Id = id, Kernel = new KernelSpec { Image = "registry.test/k:1" } };

    [Test]
    public async Task AllStepsProceed_InOrder_DriverStartsTheResolvedViewAndStepConditionsAreWritten()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        var resolve = new RecordingStep("images", 200, _log, ctx =>
        {
            ctx.Vm = ctx.Vm with { Spec = ctx.Vm.Spec with { Kernel = new KernelSpec { Image = "/cache/k" } } };
            ctx.TrustedPaths.Add("/cache/k");
            return StartStepResult.Proceed(s => s with
            {
                Conditions = Conditions.Set(s.Conditions, "ImageReady", ConditionStatus.True, "Pulled", "", 1, DateTimeOffset.UnixEpoch),
            });
        });
        var admit = new RecordingStep("admission", 100, _log, _ => StartStepResult.Proceed());

        var result = await NewReconciler(resolve, admit).ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Poll);
        _log.Should().Equal("prepare:admission", "prepare:images");
        _driver.LastStarted!.Spec.Kernel.Image.Should().Be("/cache/k");
        var after = (await _store.GetAsync(vm.Key))!;
        after.Spec.Kernel.Image.Should().Be("registry.test/k:1", "a step's view never changes the stored record");
        after.Status.Phase.Should().Be(Phase.Running);
        after.Status.FindCondition("ImageReady")!.Status.Should().Be(ConditionStatus.True);
    }

    [Test]
    public async Task NewVm_ClaimAndProvisioningAreOneWriteBeforeAnyStep_StepConditionsArriveWithRunning()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        MicroVm? seenByStep = null;
        var images = new RecordingStep("images", 200, _log, ctx =>
        {
            seenByStep = _store.GetAsync(ctx.Stored.Key).GetAwaiter().GetResult();
            return StartStepResult.Proceed(s => s with
            {
                Conditions = Conditions.Set(s.Conditions, "ImageReady", ConditionStatus.True, "Pulled", "", 1, DateTimeOffset.UnixEpoch),
            });
        });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var watch = _store.WatchAsync(cts.Token).GetAsyncEnumerator(cts.Token);
        var subscribed = watch.MoveNextAsync(); // the fake subscribes on the first MoveNext

        var result = await NewReconciler(images).ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Poll);
        seenByStep!.Claimed.Should().BeTrue("the claim is durable before a step may make host resources");
        seenByStep.Status.Phase.Should().Be(Phase.Provisioning);
        seenByStep.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be("Provisioning");
        _store.StatusWrites.Should().Be(2, "claim + Provisioning in one write, then Running (issue 15)");
        var events = new List<StoreEvent>();
        (await subscribed).Should().BeTrue();
        events.Add(watch.Current);
        (await watch.MoveNextAsync()).Should().BeTrue();
        events.Add(watch.Current);
        events.Select(e => (e.MicroVm!.Claimed, e.MicroVm.Status.Phase)).Should().Equal((true, Phase.Provisioning), (true, Phase.Running));
        var after = (await _store.GetAsync(vm.Key))!;
        after.Status.FindCondition("ImageReady")!.Status.Should().Be(ConditionStatus.True, "the steps' changes ride on the Running write");
    }

    [Test]
    public async Task StepWaits_NoDriverStart_PendingWithTheStepsReasonAndRetryDelay()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        var pull = new RecordingStep("images", 200, _log, _ => StartStepResult.Wait(
            "ImagePulling", "pulling registry.test/k:1: 10/20 MB", TimeSpan.FromSeconds(2),
            s => s with { Conditions = Conditions.Set(s.Conditions, "ImageReady", ConditionStatus.False, "Pulling", "10/20 MB", 1, DateTimeOffset.UnixEpoch) }));
        var later = new RecordingStep("network", 300, _log, _ => StartStepResult.Proceed());

        var result = await NewReconciler(pull, later).ReconcileAsync(vm.Key, CancellationToken.None);

        result.Should().Be(ReconcileResult.After(TimeSpan.FromSeconds(2)));
        _log.Should().Equal("prepare:images");
        _driver.CallCount("start").Should().Be(0);
        var after = (await _store.GetAsync(vm.Key))!;
        after.Status.Phase.Should().Be(Phase.Pending);
        after.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be("ImagePulling");
        after.Status.FindCondition(Conditions.Ready)!.Message.Should().Contain("10/20 MB");
        after.Status.FindCondition("ImageReady")!.Message.Should().Be("10/20 MB");
    }

    [Test]
    public async Task StepFails_NoDriverStart_FailedWithTheStepsReason()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        var admit = new RecordingStep("admission", 100, _log,
            _ => StartStepResult.Fail("InsufficientMemory", "needs 128 MiB, 64 MiB free"));

        var result = await NewReconciler(admit).ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Backoff);
        _driver.CallCount("start").Should().Be(0);
        var after = (await _store.GetAsync(vm.Key))!;
        after.Status.Phase.Should().Be(Phase.Failed);
        after.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be("InsufficientMemory");
        after.Status.FindCondition(Conditions.Synchronized)!.Message.Should().Be("needs 128 MiB, 64 MiB free");
    }

    [Test]
    public async Task Delete_ReleasesEveryStep_HighestOrderFirst_AfterDriverCleanup()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        var reconciler = NewReconciler(
            new RecordingStep("admission", 100, _log, _ => StartStepResult.Proceed()),
            new RecordingStep("network", 300, _log, _ => StartStepResult.Proceed()));
        await reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        _log.Clear();

        await _store.MarkForDeletionAsync(vm.Key);
        await reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        _log.Should().Equal("release:network", "release:admission");
        _driver.CallCount("cleanup").Should().Be(1);
        (await _store.GetAsync(vm.Key)).Should().BeNull();
    }

    private sealed class RecordingStep(string name, int order, List<string> log, Func<StartContext, StartStepResult> prepare) : IStartStep
    {
        public string Name => name;

        public int Order => order;

        public Task<StartStepResult> PrepareAsync(StartContext context, CancellationToken cancellationToken)
        {
            log.Add("prepare:" + name);
            return Task.FromResult(prepare(context));
        }

        public Task ReleaseAsync(MicroVm vm, CancellationToken cancellationToken)
        {
            log.Add("release:" + name);
            return Task.CompletedTask;
        }
    }
}

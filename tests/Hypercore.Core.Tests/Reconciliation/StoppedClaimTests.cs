using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Reconciliation;

/// <summary>
/// Issue 15: a VM created Stopped with nothing live for it is claimed in its Stopped write (one write, not a claim and
/// then Stopped); anything live for it is claimed before the reconciler touches it, as before.
/// </summary>
public class StoppedClaimTests
{
    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private Reconciler _reconciler = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver();
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 12, 0, 0, TimeSpan.Zero));
        var options = new ReconcilerOptions { NodeName = "node-a", StopGracePeriod = TimeSpan.FromSeconds(7) };
        _reconciler = new Reconciler(_store, new DriverRegistry([_driver], "fake"), time, Options.Create(options), NullLogger<Reconciler>.Instance);
    }

    private static MicroVmSpec Spec(string id, DesiredState state) =>
        new() { Id = id, Kernel = new KernelSpec { Image = "/k" }, State = state };

    /// <summary>Every event the store publishes while <paramref name="action"/> runs (<see cref="InMemoryStore.EventsDuring"/>).</summary>
    private Task<List<StoreEvent>> EventsDuring(Func<Task> action) => _store.EventsDuring(action, Spec("zz-end-marker", DesiredState.Stopped));

    [Test]
    public async Task NewStoppedVm_NothingLive_ClaimedAndStoppedInOneWrite()
    {
        var vm = await _store.CreateAsync(Spec("a", DesiredState.Stopped));

        var events = await EventsDuring(async () =>
            (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Done));

        _driver.Calls.Should().Equal("inspect:a");
        events.Should().ContainSingle("the claim rides on the Stopped write");
        var written = events[0].MicroVm!;
        written.Claimed.Should().BeTrue();
        written.Status.Phase.Should().Be(Phase.Stopped);
        written.Status.Node.Should().Be("node-a");
        written.Status.ObservedGeneration.Should().Be(1);
        written.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be("Stopped");
        written.Status.FindCondition(Conditions.Synchronized)!.Status.Should().Be(ConditionStatus.True);
        (await _store.GetAsync(vm.Key)).Should().BeEquivalentTo(written);
    }

    [Test]
    public async Task NewStoppedVm_SomethingLive_ClaimedBeforeItIsStopped()
    {
        var vm = await _store.CreateAsync(Spec("a", DesiredState.Stopped));
        _driver.SetLive(vm.Uid, LiveState.Running, pid: 4242);

        var events = await EventsDuring(async () =>
            (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Done));

        _driver.Calls.Should().Equal("inspect:a", "stop(7):a");
        events.Select(e => (e.MicroVm!.Claimed, e.MicroVm.Status.Phase)).Should().Equal(
            [(true, Phase.Pending), (true, Phase.Stopping), (true, Phase.Stopped)],
            "the claim is durable before the Stopping write, which comes before the stop");
    }

    [Test]
    public async Task NewStoppedVm_StoreClaimsInAWriteOfItsOwn_ClaimedFirstAsBefore()
    {
        _store.ClaimWithStatusIsOneWrite = false; // Kubernetes: the claim is the finalizer, a write of its own
        var vm = await _store.CreateAsync(Spec("a", DesiredState.Stopped));

        var events = await EventsDuring(async () =>
            (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Done));

        events.Select(e => (e.MicroVm!.Claimed, e.MicroVm.Status.Phase)).Should().Equal([(true, Phase.Pending), (true, Phase.Stopped)]);
    }

    [Test]
    public async Task NewStoppedVm_SpecChangedDuringInspect_WritesNothingAndRetries()
    {
        var vm = await _store.CreateAsync(Spec("a", DesiredState.Stopped));
        _driver.InspectOverride = _ =>
        {
            _store.UpdateSpecAsync(vm.Key, vm.Spec with { Vcpu = 2 }, vm.ResourceVersion).GetAwaiter().GetResult();
            return null;
        };

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Backoff, "the version check of the one write fails: the new spec is reconciled next");
        var after = (await _store.GetAsync(vm.Key))!;
        after.Claimed.Should().BeFalse("nothing was written for the old version");
        after.Status.Phase.Should().Be(Phase.Pending);
        after.Spec.Vcpu.Should().Be(2);
    }
}

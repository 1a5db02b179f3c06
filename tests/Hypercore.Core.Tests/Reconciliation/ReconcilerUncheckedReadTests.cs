using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Reconciliation;

/// <summary>
/// Issue 15 (fifth pass): a new VM's cached record (unclaimed, Pending) is used without the version check, because
/// the pass's first write is a claim checked against that version. A stale copy fails that write, nothing is written
/// or started from it, and the pass runs again from the store's record; every other way through checks first.
/// </summary>
public class ReconcilerUncheckedReadTests
{
    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private FakeCache _cache = null!;
    private CountingVersionCheck _versions = null!;
    private Reconciler _reconciler = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver();
        _cache = new FakeCache();
        _versions = new CountingVersionCheck(_store);
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 15, 0, 0, TimeSpan.Zero));
        _reconciler = new Reconciler(_store, new DriverRegistry([_driver], "fake"), time,
            Options.Create(new ReconcilerOptions { NodeName = "node-a", StopGracePeriod = TimeSpan.FromSeconds(7) }),
            NullLogger<Reconciler>.Instance, cache: _cache, versions: _versions);
    }

    private static MicroVmSpec Spec(string id, DesiredState state = DesiredState.Running) =>
        new() { Id = id, Kernel = new KernelSpec { Image = "/k" }, State = state };

    [Test]
    public async Task Reconcile_NewVmInCache_StartsItWithoutAVersionCheck()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        _cache.Put(vm);

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Poll);
        _versions.Checks.Should().Be(0, "the claim + Provisioning write checks the version itself");
        _reconciler.UncheckedReads.Should().Be(1);
        _reconciler.StaleCopies.Should().Be(0);
        _driver.CallCount("start").Should().Be(1);
        var stored = (await _store.GetAsync(vm.Key))!;
        stored.Claimed.Should().BeTrue();
        stored.Status.Phase.Should().Be(Phase.Running);
    }

    [Test]
    public async Task Reconcile_NewStoppedVmInCache_ClaimedAndStoppedWithoutAVersionCheck()
    {
        var vm = await _store.CreateAsync(Spec("a", DesiredState.Stopped));
        _cache.Put(vm);
        var writes = _store.StatusWrites;

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Done);
        _versions.Checks.Should().Be(0);
        _reconciler.UncheckedReads.Should().Be(1);
        _driver.Calls.Should().Equal("inspect:a");
        _store.StatusWrites.Should().Be(writes + 1, "claim and Stopped are one write");
        var stored = (await _store.GetAsync(vm.Key))!;
        stored.Claimed.Should().BeTrue();
        stored.Status.Phase.Should().Be(Phase.Stopped);
    }

    [Test]
    public async Task Reconcile_CachedNewVmWhoseSpecChangedToStopped_IsNotStartedAndEndsStopped()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        _cache.Put(vm); // the informer has not seen the spec change below yet
        await _store.UpdateSpecAsync(vm.Key, vm.Spec with { State = DesiredState.Stopped }, vm.ResourceVersion);

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Done, "the claim failed its version check, and the pass ran again from the store");
        _reconciler.StaleCopies.Should().Be(1);
        _driver.CallCount("start").Should().Be(0, "nothing is started from a stale copy");
        var stored = (await _store.GetAsync(vm.Key))!;
        stored.Status.Phase.Should().Be(Phase.Stopped);
        stored.Claimed.Should().BeTrue();
        stored.Status.ObservedGeneration.Should().Be(2);
    }

    [Test]
    public async Task Reconcile_CachedNewVmWhoseStatusWasWrittenElsewhere_WritesAgainstTheStoredVersion()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        _cache.Put(vm);
        var other = vm.Status with { Runtime = "written by someone else" };
        await _store.UpdateStatusAsync(vm.Key, other, vm.ResourceVersion); // status only: no new pass would be queued for it

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Poll, "the write that failed its version check is retried in the same pass; nothing is lost");
        _reconciler.StaleCopies.Should().Be(1);
        _driver.CallCount("start").Should().Be(1);
        var stored = (await _store.GetAsync(vm.Key))!;
        stored.Status.Phase.Should().Be(Phase.Running);
        stored.Claimed.Should().BeTrue();
    }

    [Test]
    public async Task Reconcile_CachedNewVmRemovedFromTheStore_IsTreatedAsGoneAndNothingIsCleanedUp()
    {
        var vm = await _store.CreateAsync(Spec("a", DesiredState.Stopped));
        _cache.Put(vm);
        _store.RemoveSilently(vm.Key);

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Done);
        _reconciler.StaleCopies.Should().Be(1);
        _driver.Calls.Should().Equal(["inspect:a"], "the stale pass only inspected; the gone record left nothing to stop or clean up");

        // The informer drops it; the next pass finds nothing to clean up: the stale pass left nothing remembered.
        _cache.Remove(vm.Key);
        var again = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        again.Outcome.Should().Be(ReconcileOutcome.Done);
        _driver.Calls.Should().Equal("inspect:a");
    }

    [Test]
    public async Task Reconcile_NewVmRefusedByItsDriver_ChecksTheVersionBeforeWritingTheFailure()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        _cache.Put(vm);
        _driver.Availability = DriverAvailability.Unavailable("fake binary missing");

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Backoff);
        _versions.Checks.Should().Be(1, "only the claim may go unchecked");
        _reconciler.CachedReads.Should().Be(1, "checked, the informer's copy was used like any current one");
        (await _store.GetAsync(vm.Key))!.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be(Conditions.ReasonProviderUnavailable);
    }

    [Test]
    public async Task Reconcile_StaleNewVmRefusedByItsDriver_ActsOnTheStoredRecord()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        _cache.Put(vm);
        await _store.MarkForDeletionAsync(vm.Key);
        _driver.Availability = DriverAvailability.Unavailable("fake binary missing");

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Done);
        _reconciler.StaleCopies.Should().Be(1);
        (await _store.GetAsync(vm.Key)).Should().BeNull("the stored record was being deleted: the pass deleted it instead of writing a failure");
    }

    [Test]
    public async Task Reconcile_NewStoppedVmWithSomethingLive_ChecksTheVersionBeforeTheClaim()
    {
        var vm = await _store.CreateAsync(Spec("a", DesiredState.Stopped));
        _cache.Put(vm);
        _driver.SetLive(vm.Uid, LiveState.Running);

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Done);
        _versions.Checks.Should().Be(1);
        _driver.Calls.Should().ContainInOrder("inspect:a", "stop(7):a");
        (await _store.GetAsync(vm.Key))!.Status.Phase.Should().Be(Phase.Stopped);
    }

    [Test]
    public async Task Reconcile_ClaimedVmInCache_IsCheckedAsBefore()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        _cache.Put((await _store.GetAsync(vm.Key))!);
        var checks = _versions.Checks;

        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        _versions.Checks.Should().Be(checks + 1);
        _reconciler.CachedReads.Should().Be(1);
    }

    [Test]
    public async Task Reconcile_NewStoppedVmOnAStoreWhoseClaimIsItsOwnWrite_IsChecked()
    {
        _store.ClaimWithStatusIsOneWrite = false; // the claim would be a write without a version check
        var vm = await _store.CreateAsync(Spec("a", DesiredState.Stopped));
        _cache.Put(vm);

        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        _versions.Checks.Should().Be(1);
        _reconciler.UncheckedReads.Should().Be(0);
        (await _store.GetAsync(vm.Key))!.Status.Phase.Should().Be(Phase.Stopped);
    }

    private sealed class FakeCache : IMicroVmCache
    {
        private readonly Dictionary<VmKey, MicroVm> _items = [];

        public void Put(MicroVm vm) => _items[vm.Key] = vm;

        public void Remove(VmKey key) => _items.Remove(key);

        public MicroVm? Get(VmKey key) => _items.GetValueOrDefault(key);
    }

    private sealed class CountingVersionCheck(IMicroVmStore store) : IResourceVersionCheck
    {
        public int Checks { get; private set; }

        public async ValueTask<bool> IsCurrentAsync(VmKey key, string resourceVersion, CancellationToken cancellationToken = default)
        {
            Checks++;
            return (await store.GetAsync(key, cancellationToken))?.ResourceVersion == resourceVersion;
        }
    }
}

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
/// Issue 15: the reconciler acts on the informer's cached record only when the store confirms it is the stored
/// version; a stale cache falls back to the store's read, so an old spec or status is never acted on.
/// </summary>
public class ReconcilerCachedReadTests
{
    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private FakeCache _cache = null!;
    private StoreVersionCheck _versions = null!;
    private Reconciler _reconciler = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver();
        _cache = new FakeCache();
        _versions = new StoreVersionCheck(_store);
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 2, 0, 0, TimeSpan.Zero));
        _reconciler = new Reconciler(_store, new DriverRegistry([_driver], "fake"), time,
            Options.Create(new ReconcilerOptions { NodeName = "node-a", StopGracePeriod = TimeSpan.FromSeconds(7) }),
            NullLogger<Reconciler>.Instance, cache: _cache, versions: _versions);
    }

    private static MicroVmSpec Spec(string id, DesiredState state = DesiredState.Running) =>
        new() { Id = id, Kernel = new KernelSpec { Image = "/k" }, State = state };

    [Test]
    public async Task Reconcile_CachedRecordIsCurrent_UsesTheCacheAndChangesNothing()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None); // starts it: claim + status writes
        var current = (await _store.GetAsync(vm.Key))!;
        _cache.Put(current);
        var writes = _store.StatusWrites;
        _driver.Calls.Clear();

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Poll);
        _reconciler.CachedReads.Should().Be(1);
        _versions.Checks.Should().Be(1);
        _driver.Calls.Should().Equal("inspect:a");
        _store.StatusWrites.Should().Be(writes);
    }

    [Test]
    public async Task Reconcile_CacheHoldsAnOlderSpec_ActsOnTheStoredSpec()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        var running = (await _store.GetAsync(vm.Key))!;
        _cache.Put(running); // the informer has not seen the next write yet
        await _store.UpdateSpecAsync(vm.Key, running.Spec with { State = DesiredState.Stopped }, running.ResourceVersion);
        _driver.Calls.Clear();

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Done);
        _reconciler.CachedReads.Should().Be(0, "the cached copy is older than the stored record");
        _driver.Calls.Should().ContainInOrder("inspect:a", "stop(7):a");
        (await _store.GetAsync(vm.Key))!.Status.Phase.Should().Be(Phase.Stopped);
    }

    [Test]
    public async Task Reconcile_CacheHoldsAnOlderStatus_WritesAgainstTheStoredVersion()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        _cache.Put(vm); // unclaimed, Pending: older than what the first pass writes
        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None); // current then: read from the cache
        var cachedReads = _reconciler.CachedReads;
        _driver.Calls.Clear();

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Poll, "a write based on the stale copy would have conflicted and backed off");
        _reconciler.CachedReads.Should().Be(cachedReads, "the cached copy was older than the first pass's writes");
        _driver.Calls.Should().Equal("inspect:a");
    }

    [Test]
    public async Task Reconcile_CachedRecordDeletedFromTheStore_IsTreatedAsGone()
    {
        var vm = await _store.CreateAsync(Spec("a"));
        _cache.Put(vm);
        _store.RemoveSilently(vm.Key);

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Done);
        _reconciler.CachedReads.Should().Be(0);
        _driver.Calls.Should().NotContain(c => c.StartsWith("start:", StringComparison.Ordinal), "a record that is gone is never started from a cached copy");
    }

    [Test]
    public async Task Reconcile_CachedRecordReplacedBySameKey_ActsOnTheNewRecord()
    {
        var old = await _store.CreateAsync(Spec("a"));
        _cache.Put(old);
        _store.RemoveSilently(old.Key);
        var fresh = await _store.CreateAsync(Spec("a", DesiredState.Stopped));

        await _reconciler.ReconcileAsync(fresh.Key, CancellationToken.None);

        _reconciler.CachedReads.Should().Be(0);
        _driver.Calls.Should().NotContain(c => c.StartsWith("start:", StringComparison.Ordinal));
        (await _store.GetAsync(fresh.Key))!.Status.Phase.Should().Be(Phase.Stopped);
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
}

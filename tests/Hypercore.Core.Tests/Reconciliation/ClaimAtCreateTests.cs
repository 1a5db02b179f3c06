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
/// Issue 15 (claim14): where the store claims with a status in one write, a new VM created Stopped is stored already
/// claimed, with the status the reconciler's first pass would write with its claim (<see cref="IClaimAtCreate"/>); that
/// pass then writes nothing, and still stops and reports anything it finds. A VM that should run is claimed by its first
/// pass, as before.
/// </summary>
public class ClaimAtCreateTests
{
    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private FakeTimeProvider _time = null!;
    private FakeCache _cache = null!;
    private StoreVersionCheck _versions = null!;
    private Reconciler _reconciler = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver();
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 20, 0, 0, TimeSpan.Zero));
        _cache = new FakeCache();
        _versions = new StoreVersionCheck(_store);
        _reconciler = NewReconciler();
    }

    private Reconciler NewReconciler() =>
        new(_store, new DriverRegistry([_driver], "fake"), _time,
            Options.Create(new ReconcilerOptions { NodeName = "node-a", StopGracePeriod = TimeSpan.FromSeconds(7) }),
            NullLogger<Reconciler>.Instance, cache: _cache, versions: _versions);

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
    public async Task StatusAtCreate_Running_IsNull_TheFirstPassClaimsAsBefore()
    {
        _reconciler.StatusAtCreate(Spec("a")).Should().BeNull("a VM that should run is claimed by its first pass, whose claim is its version check");
        _reconciler.StatusAtCreate(Spec("a", DesiredState.Paused)).Should().BeNull();
        var pending = await _store.CreateAsync(Spec("a"));
        _cache.Put(pending);

        var events = await EventsDuring(() => _reconciler.ReconcileAsync(pending.Key, CancellationToken.None));

        events.Select(e => (e.MicroVm!.Claimed, e.MicroVm.Status.Phase)).Should().Equal([(true, Phase.Provisioning), (true, Phase.Running)]);
        _versions.Checks.Should().Be(0, "the claim, checked against the copy's version, is the check");
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
        var stopped = Spec("a", DesiredState.Stopped);
        _reconciler.StatusAtCreate(stopped with { NodeName = "node-b" }).Should().BeNull("another node's VM is never claimed here");
        _reconciler.StatusAtCreate(stopped with { Provider = "nope" }).Should().BeNull("no such driver: the pass fails it unclaimed");
        _reconciler.StatusAtCreate(stopped with { Metadata = new Dictionary<string, string> { ["k"] = "v" } })
            .Should().BeNull("the fake has no metadata service: the pass refuses it before any claim");
        _reconciler.StatusAtCreate(stopped with { NodeName = "node-a" }).Should().NotBeNull("this node's own name is this node");

        _store.ClaimWithStatusIsOneWrite = false; // Kubernetes: the finalizer is a write of its own
        _reconciler.StatusAtCreate(stopped).Should().BeNull();
    }

    [Test]
    public async Task Delete_JustCreatedClaimedRecord_CleansUpAndRemoves()
    {
        var vm = await CreateClaimedAsync(Spec("a", DesiredState.Stopped));
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

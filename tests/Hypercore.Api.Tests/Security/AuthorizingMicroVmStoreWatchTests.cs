using Hypercore.Api.Security;
using Hypercore.MicroVms;
using Hypercore.Store;

namespace Hypercore.Api.Tests.Security;

/// <summary>
/// The authorizing store's watch: the shared informer (no caller) follows every write through it, so it must add
/// nothing there (issue 15, cpu11); a caller in a request still sees only the namespaces of its grant.
/// </summary>
public sealed class AuthorizingMicroVmStoreWatchTests
{
    private static readonly AccessPolicy Policy = new([new IdentityGrant("ci", ["ci"], Write: false)]);

    [Test]
    public void Watch_OutsideARequest_IsTheStoresOwnStream()
    {
        var inner = new WatchOnlyStore(Event("ci", "a"), Event("other", "b"));

        var watch = new AuthorizingMicroVmStore(inner, Policy).WatchAsync();

        watch.Should().BeSameAs(inner.Stream, "the informer's events must not pass through one more async iterator each");
    }

    [Test]
    public async Task Watch_OutsideARequest_SeesEveryNamespace()
    {
        var inner = new WatchOnlyStore(Event("ci", "a"), Event("other", "b"));

        var seen = await Collect(new AuthorizingMicroVmStore(inner, Policy));

        seen.Should().Equal("ci/a", "other/b");
    }

    [Test]
    public async Task Watch_InARequest_SeesOnlyTheCallersNamespaces()
    {
        var inner = new WatchOnlyStore(Event("ci", "a"), Event("other", "b"), Event("ci", "c"));
        var store = new AuthorizingMicroVmStore(inner, Policy);

        List<string> seen;
        using (CallerContext.Enter(new Caller("ci", "token")))
        {
            seen = await Collect(store);
        }

        seen.Should().Equal("ci/a", "ci/c");
    }

    [Test]
    public async Task Watch_InARequestOfACallerWithoutGrant_IsPermissionDenied()
    {
        var store = new AuthorizingMicroVmStore(new WatchOnlyStore(Event("ci", "a")), Policy);

        Func<Task> watch;
        using (CallerContext.Enter(new Caller("stranger", "token")))
        {
            watch = () => Collect(store);
            var thrown = await watch.Should().ThrowAsync<Grpc.Core.RpcException>();
            thrown.Which.StatusCode.Should().Be(Grpc.Core.StatusCode.PermissionDenied);
        }
    }

    private static async Task<List<string>> Collect(IMicroVmStore store)
    {
        var seen = new List<string>();
        await foreach (var ev in store.WatchAsync())
        {
            seen.Add(ev.MicroVm!.Key.ToString());
        }

        return seen;
    }

    private static StoreEvent Event(string @namespace, string id) => new(StoreEventType.Added, new MicroVm
    {
        Uid = @namespace + "-" + id,
        Spec = new MicroVmSpec { Namespace = @namespace, Id = id, Kernel = new KernelSpec { Image = "/k" } },
        ResourceVersion = "1",
    });

    /// <summary>A store that only watches: a fixed list of events.</summary>
    private sealed class WatchOnlyStore(params StoreEvent[] events) : IMicroVmStore
    {
        public IAsyncEnumerable<StoreEvent> Stream { get; } = events.ToAsyncEnumerable();

        public string Name => "watch-only";

        public IAsyncEnumerable<StoreEvent> WatchAsync(CancellationToken cancellationToken = default) => Stream;

        public Task<MicroVm?> GetAsync(VmKey key, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task<MicroVm?> GetByUidAsync(string uid, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task<IReadOnlyList<MicroVm>> ListAsync(string? @namespace = null, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task<MicroVm> CreateAsync(MicroVmSpec spec, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task<MicroVm> UpdateSpecAsync(VmKey key, MicroVmSpec spec, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public Task<MicroVm> UpdateStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public Task<MicroVm> ClaimAsync(VmKey key, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task<MicroVm> MarkForDeletionAsync(VmKey key, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task RemoveAsync(VmKey key, CancellationToken cancellationToken = default) => throw new NotSupportedException();
    }
}

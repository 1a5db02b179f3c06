using Hypercore.MicroVms;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>A store that passes every call to <paramref name="inner"/>; tests override what they change (a watch, a list).</summary>
internal abstract class DelegatingStore(IMicroVmStore inner) : IMicroVmStore
{
    public string Name => inner.Name;

    public virtual Task<IReadOnlyList<MicroVm>> ListAsync(string? @namespace = null, CancellationToken cancellationToken = default) =>
        inner.ListAsync(@namespace, cancellationToken);

    public virtual IAsyncEnumerable<StoreEvent> WatchAsync(CancellationToken cancellationToken = default) => inner.WatchAsync(cancellationToken);

    public Task<MicroVm?> GetAsync(VmKey key, CancellationToken cancellationToken = default) => inner.GetAsync(key, cancellationToken);

    public Task<MicroVm?> GetByUidAsync(string uid, CancellationToken cancellationToken = default) => inner.GetByUidAsync(uid, cancellationToken);

    public Task<MicroVm> CreateAsync(MicroVmSpec spec, CancellationToken cancellationToken = default) => inner.CreateAsync(spec, cancellationToken);

    public Task<MicroVm> UpdateSpecAsync(VmKey key, MicroVmSpec spec, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
        inner.UpdateSpecAsync(key, spec, expectedResourceVersion, cancellationToken);

    public Task<MicroVm> UpdateStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
        inner.UpdateStatusAsync(key, status, expectedResourceVersion, cancellationToken);

    public Task<MicroVm> ClaimAsync(VmKey key, CancellationToken cancellationToken = default) => inner.ClaimAsync(key, cancellationToken);

    public Task<MicroVm> MarkForDeletionAsync(VmKey key, CancellationToken cancellationToken = default) => inner.MarkForDeletionAsync(key, cancellationToken);

    public Task RemoveAsync(VmKey key, CancellationToken cancellationToken = default) => inner.RemoveAsync(key, cancellationToken);
}

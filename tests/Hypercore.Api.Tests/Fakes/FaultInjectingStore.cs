using Hypercore.MicroVms;
using Hypercore.Store;

namespace Hypercore.Api.Tests.Fakes;

/// <summary>
/// Wraps the real store and, on demand, fails the next calls of one kind: a conflict before an UpdateSpec (as
/// if the reconciler wrote status in between), or a store outage. Everything else goes to the real store.
/// </summary>
public sealed class FaultInjectingStore : IMicroVmStore
{
    private readonly IMicroVmStore _inner;
    private int _conflictsBeforeUpdateSpec;
    private int _updateSpecCalls;

    public FaultInjectingStore(IMicroVmStore inner) => _inner = inner;

    public IMicroVmStore Inner => _inner;

    /// <summary>When set, every call throws this (a store outage).</summary>
    public StoreException? Outage { get; set; }

    public string Name => _inner.Name;

    public int UpdateSpecCalls => Volatile.Read(ref _updateSpecCalls);

    /// <summary>The next <paramref name="count"/> UpdateSpec calls first change the record's status (a concurrent reconciler write), so they conflict.</summary>
    public void ConflictNextUpdateSpecs(int count) => Volatile.Write(ref _conflictsBeforeUpdateSpec, count);

    public Task<MicroVm?> GetAsync(VmKey key, CancellationToken cancellationToken = default) =>
        Guard(() => _inner.GetAsync(key, cancellationToken));

    public Task<MicroVm?> GetByUidAsync(string uid, CancellationToken cancellationToken = default) =>
        Guard(() => _inner.GetByUidAsync(uid, cancellationToken));

    public Task<IReadOnlyList<MicroVm>> ListAsync(string? @namespace = null, CancellationToken cancellationToken = default) =>
        Guard(() => _inner.ListAsync(@namespace, cancellationToken));

    public Task<MicroVm> CreateAsync(MicroVmSpec spec, CancellationToken cancellationToken = default) =>
        Guard(() => _inner.CreateAsync(spec, cancellationToken));

    public async Task<MicroVm> UpdateSpecAsync(VmKey key, MicroVmSpec spec, string expectedResourceVersion, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _updateSpecCalls);
        if (Interlocked.Decrement(ref _conflictsBeforeUpdateSpec) >= 0)
        {
            // A real concurrent write: the reconciler bumps the restart count, so the caller's version is stale.
            var current = await _inner.GetAsync(key, cancellationToken) ?? throw new NotFoundException(key);
            await _inner.UpdateStatusAsync(key, current.Status with { RestartCount = current.Status.RestartCount + 1 }, current.ResourceVersion, cancellationToken);
        }

        return await Guard(() => _inner.UpdateSpecAsync(key, spec, expectedResourceVersion, cancellationToken));
    }

    public Task<MicroVm> UpdateStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
        Guard(() => _inner.UpdateStatusAsync(key, status, expectedResourceVersion, cancellationToken));

    public Task<MicroVm> ClaimAsync(VmKey key, CancellationToken cancellationToken = default) =>
        Guard(() => _inner.ClaimAsync(key, cancellationToken));

    public bool ClaimWithStatusIsOneWrite => _inner.ClaimWithStatusIsOneWrite;

    public Task<MicroVm> CreateClaimedAsync(MicroVmSpec spec, MicroVmStatus status, CancellationToken cancellationToken = default) =>
        Guard(() => _inner.CreateClaimedAsync(spec, status, cancellationToken));

    public Task<MicroVm> ClaimWithStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
        Guard(() => _inner.ClaimWithStatusAsync(key, status, expectedResourceVersion, cancellationToken));

    public Task<MicroVm> MarkForDeletionAsync(VmKey key, CancellationToken cancellationToken = default) =>
        Guard(() => _inner.MarkForDeletionAsync(key, cancellationToken));

    public Task RemoveAsync(VmKey key, CancellationToken cancellationToken = default) =>
        Guard(async () =>
        {
            await _inner.RemoveAsync(key, cancellationToken);
            return 0;
        });

    /// <summary>How many store watches were opened (the API's Watch calls share the informer's one).</summary>
    public int WatchesOpened => Volatile.Read(ref _watchesOpened);

    private int _watchesOpened;

    public IAsyncEnumerable<StoreEvent> WatchAsync(CancellationToken cancellationToken = default)
    {
        if (Outage is { } outage)
        {
            throw outage;
        }

        Interlocked.Increment(ref _watchesOpened);
        return _inner.WatchAsync(cancellationToken);
    }

    private Task<T> Guard<T>(Func<Task<T>> call) => Outage is { } outage ? Task.FromException<T>(outage) : call();
}

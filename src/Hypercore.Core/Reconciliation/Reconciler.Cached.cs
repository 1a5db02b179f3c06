using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Store;

namespace Hypercore.Reconciliation;

/// <summary>
/// Issue 15: a reconcile reads the informer's cached record instead of reading and parsing the row again, but only
/// after the store confirms that the cached copy is the stored version (one indexed lookup, no JSON). A stale cache
/// (the informer has not seen the latest write yet) therefore never makes the reconciler act on an old spec or
/// status: it falls back to the store's read, as before. controller-runtime reads its cache unconditionally and
/// relies on optimistic concurrency at write time; the extra check keeps this reconciler's read semantics unchanged.
/// </summary>
public sealed partial class Reconciler
{
    private readonly IMicroVmCache? _cache;
    private readonly IResourceVersionCheck? _versions;

    /// <summary>Reads served from the informer's cache after a version check (for benchmarks and tests).</summary>
    public long CachedReads => Interlocked.Read(ref _cachedReads);

    private long _cachedReads;

    private async ValueTask<MicroVm?> ReadCurrentAsync(VmKey key, CancellationToken ct)
    {
        if (_cache?.Get(key) is { } cached && _versions is not null &&
            await _versions.IsCurrentAsync(key, cached.ResourceVersion, ct))
        {
            Interlocked.Increment(ref _cachedReads);
            return cached;
        }

        return await _store.GetAsync(key, ct);
    }
}

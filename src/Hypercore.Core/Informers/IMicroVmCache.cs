using Hypercore.MicroVms;

namespace Hypercore.Informers;

/// <summary>The informer's cached records, read by key (a seam so that tests can hand the reconciler a stale cache).</summary>
public interface IMicroVmCache
{
    /// <summary>The cached record, which may be older than the stored one; null when none is cached.</summary>
    MicroVm? Get(VmKey key);
}

using Hypercore.MicroVms;

namespace Hypercore.Store;

/// <summary>
/// Optional companion of an <see cref="IMicroVmStore"/>: tells, without reading and parsing the record, whether a
/// record still has a given resource version. The reconciler uses it to act on the informer's cached copy only when
/// that copy is the stored one (issue 15: a 100,000-record resync parsed every record twice, once for the
/// informer's list and once for its reconcile). A store without a cheap check simply does not register one.
/// </summary>
public interface IResourceVersionCheck
{
    /// <summary>
    /// True when the record <paramref name="key"/> exists and its resource version is exactly
    /// <paramref name="resourceVersion"/>; false when it changed, was deleted, or never existed.
    /// </summary>
    ValueTask<bool> IsCurrentAsync(VmKey key, string resourceVersion, CancellationToken cancellationToken = default);
}

using Hypercore.MicroVms;

namespace Hypercore.Store;

/// <summary>
/// Optional companion of an <see cref="IMicroVmStore"/> (issue 15): a list of every record's identity and version
/// that reads the full record only where the caller asks for it, so the informer's periodic relist costs O(changes)
/// instead of reading and parsing every record. A store that lists whole objects anyway (Kubernetes) does not
/// register one, and the informer lists in full.
/// </summary>
public interface IVersionListing
{
    /// <summary>
    /// Lists every record's key, uid and resource version, ordered by namespace then id (as <see cref="IMicroVmStore.ListAsync"/>),
    /// calls <paramref name="wanted"/> with each, on the calling thread and in that order, and returns the full records
    /// of those it returned true for, in the same order. The listing and the records are one snapshot of the store: a
    /// write committed during the call is either in both or in neither.
    /// </summary>
    Task<IReadOnlyList<MicroVm>> ListWantedAsync(Func<RecordVersion, bool> wanted, CancellationToken cancellationToken = default);
}

/// <summary>One record's identity and version, as listed by <see cref="IVersionListing"/>, without the record.</summary>
public readonly record struct RecordVersion(VmKey Key, string Uid, string ResourceVersion);

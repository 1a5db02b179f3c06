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
    Task<IReadOnlyList<MicroVm>> ListWantedAsync(Func<ListedVersion, bool> wanted, CancellationToken cancellationToken = default);
}

/// <summary>
/// One record's identity and version as <see cref="IVersionListing"/> lists it: the characters, valid only during the
/// call that receives them, so that a listing of 100,000 records makes no string per record (issue 15, seventh pass:
/// four strings a row were ~22 MB a relist). The version is as opaque as <see cref="MicroVm.ResourceVersion"/>, in the
/// same text. <see cref="ToRecordVersion"/> copies it out.
/// </summary>
public readonly ref struct ListedVersion(ReadOnlySpan<char> @namespace, ReadOnlySpan<char> id, ReadOnlySpan<char> uid, ReadOnlySpan<char> resourceVersion)
{
    public ReadOnlySpan<char> Namespace { get; } = @namespace;

    public ReadOnlySpan<char> Id { get; } = id;

    public ReadOnlySpan<char> Uid { get; } = uid;

    public ReadOnlySpan<char> ResourceVersion { get; } = resourceVersion;

    /// <summary>True when this is the record <paramref name="key"/>.</summary>
    public bool Is(VmKey key) => Namespace.SequenceEqual(key.Namespace) && Id.SequenceEqual(key.Id);

    /// <summary>The same, as strings that outlive the call.</summary>
    public RecordVersion ToRecordVersion() => new(new VmKey(Namespace.ToString(), Id.ToString()), Uid.ToString(), ResourceVersion.ToString());
}

/// <summary>One record's identity and version, without the record.</summary>
public readonly record struct RecordVersion(VmKey Key, string Uid, string ResourceVersion);

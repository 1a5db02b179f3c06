namespace Hypercore.Images.Cache;

/// <summary>Where and how big the image cache is.</summary>
public sealed class ImageCacheOptions
{
    public const string SectionName = "Images:Cache";

    /// <summary>Cache root, normally <c>&lt;state-dir&gt;/images</c>.</summary>
    public string Root { get; set; } = "/var/lib/hypercore/images-cache";

    /// <summary>
    /// Upper bound on blobs + trees + disks in bytes; after a pull, images no VM uses are evicted least recently
    /// used first until the cache fits. 0 = no limit. Images in use are never evicted, so the cache can exceed it.
    /// </summary>
    public long SizeLimitBytes { get; set; }

    /// <summary>
    /// How long a tag's digest, once asked of the registry, is used without asking again (a burst of VMs of one tag
    /// needs one manifest request, and a cached start none). 0 asks every time. Default 10 s.
    /// </summary>
    public TimeSpan TagTtl { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>mkfs.ext4 binary; by default looked up on PATH, then /usr/sbin and /sbin.</summary>
    public string? MkfsPath { get; set; }
}

/// <summary>Bytes done/total of one image's pull, for a VM condition or a progress bar.</summary>
public sealed record ImagePullProgress(string Reference, long BytesDone, long BytesTotal);

/// <summary>An image whose blobs are all in the cache and verified.</summary>
/// <param name="Note">Set when the image did not come from the registry's current answer (e.g. the last known digest of a
/// tag while the registry is unreachable); for the VM's condition.</param>
public sealed record PulledImage(string Reference, Registry.ImageManifest Manifest, string? Note = null)
{
    public string Digest => Manifest.Digest;
}

/// <summary>What <see cref="ImageCache.List"/> shows per image.</summary>
public sealed record CachedImage(
    string Digest,
    IReadOnlyList<string> References,
    IReadOnlyList<string> Users,
    DateTimeOffset LastUsed,
    long SizeBytes,
    bool HasTree,
    bool HasDisk);

/// <summary>
/// <see cref="ImageCache.RemoveAsync"/> refused: VMs still use the image. <see cref="Users"/> are their uids (the cache
/// knows nothing else of them); the API names them.
/// </summary>
public sealed class ImageInUseException(string digest, IReadOnlyList<string> references, IReadOnlyList<string> users)
    : InvalidOperationException($"image {digest} ({string.Join(", ", references)}) is used by VM(s) {string.Join(", ", users)}; delete them first")
{
    public string Digest { get; } = digest;

    public IReadOnlyList<string> References { get; } = references;

    public IReadOnlyList<string> Users { get; } = users;
}

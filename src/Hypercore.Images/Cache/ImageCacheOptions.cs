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

    /// <summary>mkfs.ext4 binary; by default looked up on PATH, then /usr/sbin and /sbin.</summary>
    public string? MkfsPath { get; set; }
}

/// <summary>Bytes done/total of one image's pull, for a VM condition or a progress bar.</summary>
public sealed record ImagePullProgress(string Reference, long BytesDone, long BytesTotal);

/// <summary>An image whose blobs are all in the cache and verified.</summary>
public sealed record PulledImage(string Reference, Registry.ImageManifest Manifest)
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

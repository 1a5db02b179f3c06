namespace Hypercore.Images.Registry;

/// <summary>A content descriptor from a manifest.</summary>
public sealed record Descriptor(string MediaType, string Digest, long Size);

/// <summary>A single-platform image manifest (after a list/index was resolved to linux/amd64).</summary>
/// <param name="Digest">sha256 of <see cref="Raw"/>: the image's identity in the cache.</param>
/// <param name="Layers">Layers bottom to top, in the order they are unpacked.</param>
public sealed record ImageManifest(string Digest, string MediaType, Descriptor Config, IReadOnlyList<Descriptor> Layers, byte[] Raw)
{
    /// <summary>Bytes a full pull moves: config plus layers.</summary>
    public long TotalSize => Config.Size + Layers.Sum(l => l.Size);
}

/// <summary>Media types this client accepts and sends in <c>Accept</c>.</summary>
public static class MediaTypes
{
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";

    public static bool IsIndex(string mediaType) => mediaType is OciIndex or DockerManifestList;
    public static bool IsManifest(string mediaType) => mediaType is OciManifest or DockerManifest;
}

namespace Hypercore.Images;

/// <summary>
/// How Core tells an OCI image reference from a host path or an image folder name, without any registry code
/// (that lives in Hypercore.Images, whose parser uses this same rule). A reference's first path part is a
/// registry host: it contains a '.' or a ':', or is "localhost" (<c>localhost:5000/hypercore/default:1</c>,
/// <c>ghcr.io/org/kernel@sha256:…</c>). "default" or "my-kernel:1" stay folder names; "/x" stays a path.
/// </summary>
public static class ImageSources
{
    /// <summary>True when <paramref name="text"/> is meant as a registry reference (valid or not).</summary>
    public static bool IsReference(string? text)
    {
        if (string.IsNullOrEmpty(text) || text.StartsWith('/'))
        {
            return false;
        }

        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0)
        {
            return false;
        }

        var first = text[..slash];
        if (first.StartsWith('.'))
        {
            return false; // "./x", "../x": a relative path (refused as such), never a registry host
        }

        return first == "localhost" || first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal);
    }

    /// <summary>
    /// StartContext.Items key (set by the images start step): the ids of the volumes whose view names a cached
    /// disk that the driver must give this VM a copy-on-write view of, in the VM's own directory, before booting.
    /// Value: <see cref="ISet{T}"/> of volume ids.
    /// </summary>
    public const string CopyOnWriteVolumesItem = "images.copy-on-write-volumes";
}

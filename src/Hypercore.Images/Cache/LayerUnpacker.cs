using System.Formats.Tar;
using System.IO.Compression;

namespace Hypercore.Images.Cache;

/// <summary>
/// Applies OCI layers in order onto a directory: regular entries, whiteouts (<c>.wh.name</c> deletes a lower
/// entry, <c>.wh..wh..opq</c> empties a lower directory). Refuses entries that would land outside the root:
/// absolute paths, <c>..</c>, writing through a symlink, hard links to outside, relative symlinks that climb
/// above the root. Absolute symlink targets are kept: they resolve inside the guest, and extraction never
/// follows a link.
/// </summary>
internal static class LayerUnpacker
{
    private const string WhiteoutPrefix = ".wh.";
    private const string OpaqueMarker = ".wh..wh..opq";

    public static async Task ApplyAsync(string root, string layerPath, string layerName, CancellationToken ct)
    {
        await using var file = new FileStream(layerPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        var magic = new byte[4];
        var read = await file.ReadAtLeastAsync(magic, 4, throwOnEndOfStream: false, ct);
        file.Position = 0;
        Stream tarStream = file;
        if (read >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) tarStream = new GZipStream(file, CompressionMode.Decompress);
        else if (read == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
            throw Invalid(layerName, "zstd-compressed layers are not supported yet; push the layer gzip-compressed or uncompressed");

        await using var _ = tarStream;
        // Paths this layer created: an opaque marker empties only what lower layers put in the directory.
        var createdHere = new HashSet<string>(StringComparer.Ordinal);
        var reader = new TarReader(tarStream);
        try
        {
            while (await reader.GetNextEntryAsync(copyData: false, ct) is { } entry)
                await ApplyEntryAsync(root, entry, layerName, createdHere, ct);
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
        {
            throw Invalid(layerName, $"not a valid tar stream: {e.Message}", e);
        }
    }

    private static async Task ApplyEntryAsync(string root, TarEntry entry, string layerName, HashSet<string> createdHere, CancellationToken ct)
    {
        var relative = NormalizeEntryPath(entry.Name, layerName);
        if (relative.Length == 0) return; // "./" itself
        var parent = Path.GetDirectoryName(relative) ?? "";
        var name = Path.GetFileName(relative);
        EnsureParents(root, parent, layerName, entry.Name, createdHere);
        var target = Path.Combine(root, relative);

        if (name == OpaqueMarker)
        {
            var dir = Path.Combine(root, parent);
            foreach (var child in new DirectoryInfo(dir).EnumerateFileSystemInfos())
            {
                var childRelative = parent.Length == 0 ? child.Name : parent + "/" + child.Name;
                if (!createdHere.Contains(childRelative)) Delete(child);
            }
            return;
        }
        if (name.StartsWith(WhiteoutPrefix, StringComparison.Ordinal))
        {
            var hidden = Path.Combine(root, parent, name[WhiteoutPrefix.Length..]);
            var info = new FileInfo(hidden);
            if (info.Exists || info.LinkTarget is not null) Delete(info);
            else if (Directory.Exists(hidden)) Delete(new DirectoryInfo(hidden));
            return;
        }

        createdHere.Add(relative);
        var existing = Existing(target);
        switch (entry.EntryType)
        {
            case TarEntryType.Directory:
                if (existing is not null && (existing is not DirectoryInfo || existing.LinkTarget is not null)) Delete(existing);
                Directory.CreateDirectory(target);
                SetMetadata(target, entry, isLink: false);
                break;
            case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                if (existing is not null) Delete(existing);
                await using (var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
                {
                    if (entry.DataStream is not null) await entry.DataStream.CopyToAsync(output, ct);
                }
                SetMetadata(target, entry, isLink: false);
                break;
            case TarEntryType.SymbolicLink:
                CheckSymlinkTarget(relative, entry.LinkName, layerName, entry.Name);
                if (existing is not null) Delete(existing);
                File.CreateSymbolicLink(target, entry.LinkName);
                SetMetadata(target, entry, isLink: true);
                break;
            case TarEntryType.HardLink:
                var linkRelative = NormalizeEntryPath(entry.LinkName, layerName);
                var linkParent = Path.GetDirectoryName(linkRelative) ?? "";
                CheckNoSymlinkAncestors(root, linkParent, layerName, entry.Name);
                var source = Path.Combine(root, linkRelative);
                var sourceInfo = Existing(source);
                if (sourceInfo is null || sourceInfo is DirectoryInfo || sourceInfo.LinkTarget is not null)
                    throw Invalid(layerName, $"hard link '{entry.Name}' points at '{entry.LinkName}', which is not a regular file unpacked earlier");
                if (existing is not null) Delete(existing);
                Native.HardLink(source, target);
                break;
            default:
                // Devices and FIFOs: the guest's /dev is devtmpfs; skipping them keeps the unpack unprivileged-safe.
                break;
        }
    }

    internal static string NormalizeEntryPath(string name, string layerName)
    {
        if (name.StartsWith('/'))
            throw Invalid(layerName, $"entry '{name}' has an absolute path");
        var parts = new List<string>();
        foreach (var part in name.Split('/'))
        {
            if (part.Length == 0 || part == ".") continue;
            if (part == "..") throw Invalid(layerName, $"entry '{name}' climbs out of the image root with '..'");
            if (part.Contains('\0', StringComparison.Ordinal)) throw Invalid(layerName, $"entry '{name}' contains a NUL byte");
            parts.Add(part);
        }
        return string.Join('/', parts);
    }

    private static void CheckSymlinkTarget(string relative, string linkTarget, string layerName, string entryName)
    {
        if (linkTarget.Length == 0) throw Invalid(layerName, $"symlink '{entryName}' has an empty target");
        if (linkTarget.StartsWith('/')) return;
        var depth = relative.Count(c => c == '/');
        foreach (var part in linkTarget.Split('/'))
        {
            if (part is "" or ".") continue;
            depth += part == ".." ? -1 : 1;
            if (depth < 0) throw Invalid(layerName, $"symlink '{entryName}' -> '{linkTarget}' points outside the image root");
        }
    }

    private static void EnsureParents(string root, string parent, string layerName, string entryName, HashSet<string> createdHere)
    {
        if (parent.Length == 0) return;
        var current = root;
        var soFar = "";
        foreach (var part in parent.Split('/'))
        {
            current = Path.Combine(current, part);
            soFar = soFar.Length == 0 ? part : soFar + "/" + part;
            var info = Existing(current);
            if (info is null)
            {
                Directory.CreateDirectory(current);
                createdHere.Add(soFar);
            }
            else if (info.LinkTarget is not null)
            {
                throw Invalid(layerName, $"entry '{entryName}' would be written through the symlink '{soFar}'");
            }
            else if (info is not DirectoryInfo)
            {
                Delete(info);
                Directory.CreateDirectory(current);
                createdHere.Add(soFar);
            }
        }
    }

    private static void CheckNoSymlinkAncestors(string root, string parent, string layerName, string entryName)
    {
        if (parent.Length == 0) return;
        var current = root;
        foreach (var part in parent.Split('/'))
        {
            current = Path.Combine(current, part);
            if (Existing(current) is { LinkTarget: not null })
                throw Invalid(layerName, $"hard link '{entryName}' goes through a symlink");
        }
    }

    private static FileSystemInfo? Existing(string path)
    {
        var file = new FileInfo(path);
        if (file.LinkTarget is not null) return file;
        if (file.Exists) return file;
        var dir = new DirectoryInfo(path);
        return dir.Exists ? dir : null;
    }

    private static void Delete(FileSystemInfo info)
    {
        if (info is DirectoryInfo dir && dir.LinkTarget is null) dir.Delete(recursive: true);
        else File.Delete(info.FullName);
    }

    private static void SetMetadata(string path, TarEntry entry, bool isLink)
    {
        Native.Lchown(path, entry.Uid, entry.Gid);
        if (isLink) return;
        File.SetUnixFileMode(path, (UnixFileMode)((int)entry.Mode & 0xFFF));
        File.SetLastWriteTimeUtc(path, entry.ModificationTime.UtcDateTime);
    }

    private static ImagePullException Invalid(string layerName, string message, Exception? inner = null) =>
        new(ImagePullErrorKind.InvalidLayer, null, $"layer {layerName}: {message}", null, inner);
}

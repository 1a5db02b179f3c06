using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Hypercore.Snapshots;

/// <summary>
/// Snapshots on disk: one directory per snapshot, <c>&lt;root&gt;/&lt;name&gt;/</c>, holding manifest.json and the files it
/// lists. A snapshot is written into a staging directory (<c>.staging-*</c>) and renamed into place with its manifest,
/// so a half-written snapshot is never listed; a delete renames it away (<c>.deleting-*</c>) before removing it.
/// Snapshots do not belong to a VM's directory: deleting the VM leaves them.
/// </summary>
public sealed partial class SnapshotStore
{
    public const string ManifestFile = "manifest.json";

    public SnapshotStore(string root)
    {
        Root = root;
    }

    public string Root { get; }

    /// <summary>Null when <paramref name="name"/> is a valid snapshot name, else why not.</summary>
    public static string? NameProblem(string? name) =>
        string.IsNullOrEmpty(name) ? "a snapshot name is required"
        : NamePattern().IsMatch(name) ? null
        : $"snapshot name \"{name}\" is invalid: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit";

    public string PathOf(string name) => Path.Combine(Root, name);

    public bool Exists(string name) => File.Exists(Path.Combine(PathOf(name), ManifestFile));

    /// <summary>The manifest, or null when no such snapshot exists (or its manifest cannot be read).</summary>
    public SnapshotManifest? Read(string name)
    {
        if (NameProblem(name) is not null)
        {
            return null;
        }

        var file = Path.Combine(PathOf(name), ManifestFile);
        try
        {
            return File.Exists(file) ? JsonSerializer.Deserialize(File.ReadAllBytes(file), SnapshotJsonContext.Default.SnapshotManifest) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public IReadOnlyList<SnapshotManifest> List()
    {
        if (!Directory.Exists(Root))
        {
            return [];
        }

        return Directory.EnumerateDirectories(Root)
            .Select(Path.GetFileName)
            .Where(n => n is not null && NameProblem(n) is null)
            .Select(n => Read(n!))
            .OfType<SnapshotManifest>()
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>A new, empty directory for a snapshot being written.</summary>
    public string BeginWrite(string name)
    {
        // Guest memory holds the guest's secrets: only the daemon's user may read snapshots.
        if (OperatingSystem.IsLinux())
        {
            Directory.CreateDirectory(Root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        else
        {
            Directory.CreateDirectory(Root);
        }

        var staging = Path.Combine(Root, $".staging-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        return staging;
    }

    /// <summary>
    /// Measures and hashes what the driver wrote into <paramref name="staging"/>, writes the manifest and renames the
    /// directory into place. False when a snapshot of that name appeared meanwhile (the staging directory is kept for
    /// the caller to discard).
    /// </summary>
    public bool Commit(string staging, SnapshotManifest manifest)
    {
        var target = PathOf(manifest.Name);
        var json = JsonSerializer.SerializeToUtf8Bytes(manifest, SnapshotJsonContext.Default.SnapshotManifest);
        File.WriteAllBytes(Path.Combine(staging, ManifestFile), json);
        if (Directory.Exists(target))
        {
            return false;
        }

        try
        {
            Directory.Move(staging, target);
            return true;
        }
        catch (IOException) when (Directory.Exists(target))
        {
            return false;
        }
    }

    /// <summary>Describes every file in <paramref name="staging"/>: sizes, and sha256 of the state files.</summary>
    public static (IReadOnlyList<SnapshotFile> Files, long AllocatedBytes) Describe(string staging, IEnumerable<string> stateFiles)
    {
        var hashed = stateFiles.ToHashSet(StringComparer.Ordinal);
        var files = new List<SnapshotFile>();
        long allocated = 0;
        foreach (var path in Directory.EnumerateFiles(staging).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(path);
            if (name == ManifestFile)
            {
                continue;
            }

            files.Add(new SnapshotFile(name, new FileInfo(path).Length, hashed.Contains(name) ? Sha256(path) : null));
            allocated += AllocatedBytes(path);
        }

        return (files, allocated);
    }

    /// <summary>Removes a snapshot and its files; false when there was none.</summary>
    public bool Delete(string name)
    {
        var dir = PathOf(name);
        if (NameProblem(name) is not null || !Directory.Exists(dir))
        {
            return false;
        }

        var doomed = Path.Combine(Root, $".deleting-{name}-{Guid.NewGuid():N}");
        Directory.Move(dir, doomed);
        Directory.Delete(doomed, recursive: true);
        return true;
    }

    /// <summary>Removes a staging or half-deleted directory left by a crash, and a discarded staging directory.</summary>
    public static void Discard(string staging)
    {
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>Leftovers of a daemon that died while writing or deleting a snapshot.</summary>
    public int CollectGarbage()
    {
        if (!Directory.Exists(Root))
        {
            return 0;
        }

        var leftovers = Directory.EnumerateDirectories(Root)
            .Where(d => Path.GetFileName(d) is { } n && (n.StartsWith(".staging-", StringComparison.Ordinal) || n.StartsWith(".deleting-", StringComparison.Ordinal)))
            .ToList();
        leftovers.ForEach(Discard);
        return leftovers.Count;
    }

    /// <summary>
    /// Why the snapshot cannot be restored as it is on disk (a file missing, a size or a state file's sha256 that
    /// differs from the manifest), or null.
    /// </summary>
    public string? Verify(SnapshotManifest manifest)
    {
        var dir = PathOf(manifest.Name);
        if (manifest.Format != SnapshotManifest.CurrentFormat)
        {
            return $"snapshot \"{manifest.Name}\" has manifest format {manifest.Format}; this daemon reads format {SnapshotManifest.CurrentFormat}";
        }

        foreach (var file in manifest.Files)
        {
            var path = Path.Combine(dir, file.Name);
            if (file.Name.Contains('/', StringComparison.Ordinal) || !File.Exists(path))
            {
                return $"snapshot \"{manifest.Name}\": file {file.Name} is missing from {dir}";
            }

            var size = new FileInfo(path).Length;
            if (size != file.Size)
            {
                return $"snapshot \"{manifest.Name}\": file {file.Name} is {size} bytes, the manifest says {file.Size}; the snapshot is damaged, take a new one";
            }

            if (file.Sha256 is { } expected && Sha256(path) is var actual && actual != expected)
            {
                return $"snapshot \"{manifest.Name}\": file {file.Name} has sha256 {actual}, the manifest says {expected}; the snapshot is damaged, take a new one";
            }
        }

        foreach (var disk in manifest.Disks)
        {
            if (manifest.Files.All(f => f.Name != disk.File))
            {
                return $"snapshot \"{manifest.Name}\": the copy of volume \"{disk.VolumeId}\" ({disk.File}) is not among its files";
            }
        }

        return null;
    }

    public static string Sha256(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>st_blocks * 512: what a (sparse) file really takes on disk.</summary>
    private static long AllocatedBytes(string path)
    {
        Span<byte> buffer = stackalloc byte[256];
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64 || Stat(path, buffer) != 0)
        {
            return new FileInfo(path).Length;
        }

        // x86_64 struct stat: st_blocks at offset 64 (after dev, ino, nlink, mode, uid, gid, pad, rdev, size, blksize).
        return BitConverter.ToInt64(buffer[64..72]) * 512;
    }

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Stat(string path, Span<byte> buffer);

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\z")]
    private static partial Regex NamePattern();
}

using System.Runtime.InteropServices;

namespace Hypercore.HostAccess;

/// <summary>What a path is on the host after following links.</summary>
public enum HostFileKind
{
    Missing,
    Regular,
    Directory,
    BlockDevice,
    CharacterDevice,
    Fifo,
    Socket,
    Other,
}

/// <summary>
/// stat(2) for the file type. .NET reports FIFOs, sockets and devices as plain files, and "regular files only" is
/// the whole point of the host-path policy, so the type is read from st_mode.
/// </summary>
internal static partial class HostFiles
{
    public static HostFileKind Kind(string path) =>
        Mode(path, followLinks: true) is { } mode ? KindOf(mode) : HostFileKind.Missing;

    /// <summary>The file type bits of an st_mode.</summary>
    private static HostFileKind KindOf(uint mode) =>
        (mode & TypeMask) switch
        {
            0x8000 => HostFileKind.Regular,
            0x4000 => HostFileKind.Directory,
            0x6000 => HostFileKind.BlockDevice,
            0x2000 => HostFileKind.CharacterDevice,
            0x1000 => HostFileKind.Fifo,
            0xC000 => HostFileKind.Socket,
            _ => HostFileKind.Other,
        };

    /// <summary>
    /// The path with every symlink resolved, component by component (like realpath(3)); a missing tail is kept as
    /// written. Paths with ".." are refused before they get here, so no lexical shortcut can skip a link.
    /// </summary>
    public static string RealPath(string path, int depth = 0)
    {
        if (depth > 40)
        {
            throw new IOException($"too many levels of symbolic links resolving {path}");
        }

        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var current = "/";
        for (var i = 0; i < parts.Length; i++)
        {
            if (parts[i] == ".")
            {
                continue;
            }

            if (parts[i] == "..")
            {
                // current is already real, so its parent is the real parent (a link target may say "../x").
                current = Path.GetDirectoryName(current) ?? "/";
                continue;
            }

            var next = current == "/" ? "/" + parts[i] : current + "/" + parts[i];
            var mode = Mode(next, followLinks: false); // issue 15: one lstat per component, not a FileInfo, readlink and two stats
            if ((mode & TypeMask) == SymlinkType && new FileInfo(next).LinkTarget is { } target)
            {
                var absolute = target.StartsWith('/') ? target : current.TrimEnd('/') + "/" + target;
                current = RealPath(absolute, depth + 1);
            }
            else if (mode is not null)
            {
                current = next;
            }
            else
            {
                return Normalize(string.Join('/', [current.TrimEnd('/'), .. parts[i..]]));
            }
        }

        return current;
    }

    /// <summary>Lexical "." and ".." handling, only for the part of a path that does not exist (so holds no link).</summary>
    private static string Normalize(string absolute)
    {
        var stack = new List<string>();
        foreach (var part in absolute.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == "..")
            {
                if (stack.Count > 0)
                {
                    stack.RemoveAt(stack.Count - 1);
                }
            }
            else if (part != ".")
            {
                stack.Add(part);
            }
        }

        return "/" + string.Join('/', stack);
    }

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Stat(string path, Span<byte> buffer);

    private const uint TypeMask = 0xF000; // S_IFMT
    private const uint SymlinkType = 0xA000; // S_IFLNK, seen by lstat only

    /// <summary>
    /// st_mode of <paramref name="path"/> from stat(2), or lstat(2) when links are not followed (RealPath's
    /// per-component test); null when there is nothing there.
    /// </summary>
    private static uint? Mode(string path, bool followLinks)
    {
        Span<byte> buffer = stackalloc byte[256];
        if ((followLinks ? Stat(path, buffer) : LStat(path, buffer)) != 0)
        {
            return null;
        }

        // struct stat: st_mode follows st_dev, st_ino (and st_nlink on x86_64).
        var offset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 24 : 16;
        return BitConverter.ToUInt32(buffer[offset..(offset + 4)]);
    }

    [LibraryImport("libc", EntryPoint = "lstat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LStat(string path, Span<byte> buffer);
}

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
    /// <remarks>
    /// Resolved afresh on every call (a link swapped after one check must not pass the next). Where the whole path
    /// exists the kernel resolves it (<see cref="KernelRealPath"/>: the same answer in two or three syscalls); everywhere
    /// else — a missing tail, a dangling link, a refusal on the way, no /proc — <see cref="Walk"/> answers, and is the
    /// one statement of the rule.
    /// </remarks>
    public static string RealPath(string path) => KernelRealPath(path, out _, wantMode: false) ?? Walk(path);

    /// <summary>
    /// <see cref="RealPath"/> and the <see cref="Kind"/> of what it names, as the host-path policy asks for every path it
    /// checks. Where the kernel resolves the path, the kind is read from the descriptor it resolved it with (fstat of the
    /// O_PATH descriptor: the very file the real path names, with no second path lookup); elsewhere it is the walk's
    /// answer and a stat of it, as before. Issue 15 (cpu10): one path lookup per checked path instead of two.
    /// </summary>
    public static (string Real, HostFileKind Kind) RealPathAndKind(string path)
    {
        if (KernelRealPath(path, out var mode, wantMode: true) is { } real)
        {
            return (real, KindOf(mode));
        }

        var walked = Walk(path);
        return (walked, Kind(walked));
    }

    /// <summary>
    /// Path lookups (stat, lstat, open, openat2 of a path) made on this thread: tests count them to show what a check
    /// costs in the kernel. One thread-local increment per lookup.
    /// </summary>
    [ThreadStatic]
    internal static long PathLookups;

    /// <summary>
    /// The kernel's resolution of an absolute path that exists, or null where it cannot answer exactly what
    /// <see cref="Walk"/> would (which then answers, as before issue 15). Two ways, both opening with O_PATH (follows
    /// links, opens nothing: no device or FIFO is opened and the file itself needs no permission; the directories need
    /// search permission, as lstat does):
    /// <list type="number">
    /// <item>A path already in normal form (no "//", ".", ".." or trailing "/") that openat2(2) opens with
    /// RESOLVE_NO_SYMLINKS holds no link in any component, so it is its own real path: returned as it is (two syscalls,
    /// nothing allocated). Nearly every kernel and volume path.</item>
    /// <item>Otherwise open(2) and readlink(2) of /proc/self/fd/N, which names the file the kernel reached.</item>
    /// </list>
    /// Null when neither answers: not absolute, a NUL (C would end the path there), open failed (missing, dangling link,
    /// ENOTDIR, EACCES, ELOOP, too long), /proc unreadable, a name longer than the buffer, a file unlinked in between
    /// (" (deleted)"), or text that does not survive UTF-8 (U+FFFD).
    /// </summary>
    internal static string? KernelRealPath(string path) => KernelRealPath(path, out _, wantMode: false);

    /// <summary><see cref="KernelRealPath(string)"/>, and with <paramref name="wantMode"/> the mode of the file it reached.</summary>
    /// <param name="mode">With <paramref name="wantMode"/>, st_mode of the file reached (fstat of the descriptor); else 0.</param>
    /// <param name="wantMode">Read the mode too; null is returned when fstat fails, so the caller falls back to the walk.</param>
    internal static string? KernelRealPath(string path, out uint mode, bool wantMode = false)
    {
        mode = 0;
        if (!path.StartsWith('/') || path.Contains('\0'))
        {
            return null; // Walk resolves a relative path from "/", open(2) from the working directory
        }

        if (IsNormal(path) && OpenWithoutLinks(path) is var plain and >= 0)
        {
            var known = !wantMode || FileMode(plain, out mode);
            _ = Close(plain);
            return known ? path : null;
        }

        PathLookups++;
        var fd = Open(path, OPath | OCloexec);
        if (fd < 0)
        {
            return null;
        }

        try
        {
            if (wantMode && !FileMode(fd, out mode))
            {
                return null;
            }

            Span<byte> link = stackalloc byte[32];
            "/proc/self/fd/"u8.CopyTo(link);
            fd.TryFormat(link[14..], out var digits, default, System.Globalization.CultureInfo.InvariantCulture);
            link[14 + digits] = 0;
            Span<byte> target = stackalloc byte[4096]; // PATH_MAX
            var length = (int)ReadLink(link, target, target.Length);
            if (length <= 0 || length >= target.Length || target[0] != (byte)'/' || target[..length].EndsWith(" (deleted)"u8))
            {
                return null;
            }

            var real = System.Text.Encoding.UTF8.GetString(target[..length]);
            return real.Contains('\uFFFD') ? null : real;
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>Absolute, and nothing the walk would rewrite: no empty, "." or ".." component, no trailing "/".</summary>
    private static bool IsNormal(string path) =>
        path.Length > 1 && path[0] == '/' && path[^1] != '/' && !path.EndsWith("/.", StringComparison.Ordinal) &&
        !path.EndsWith("/..", StringComparison.Ordinal) && !path.Contains("//", StringComparison.Ordinal) &&
        !path.Contains("/./", StringComparison.Ordinal) && !path.Contains("/../", StringComparison.Ordinal);

    /// <summary>openat2(2) (Linux 5.6) with O_PATH and RESOLVE_NO_SYMLINKS: a descriptor, or negative (a link on the way, missing, or no openat2).</summary>
    private static int OpenWithoutLinks(string path)
    {
        PathLookups++;
        var how = new OpenHow { Flags = OPath | OCloexec, Resolve = ResolveNoSymlinks };
        return (int)Syscall(SysOpenat2, AtFdcwd, path, ref how, 24);
    }

    /// <summary>The walk behind <see cref="RealPath"/>: one lstat per component, readlink for a link.</summary>
    internal static string Walk(string path, int depth = 0)
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
                current = Walk(absolute, depth + 1);
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
        Span<byte> buffer = stackalloc byte[StatSize];
        return StatPath(path, followLinks, buffer) ? ModeOf(buffer) : null;
    }

    /// <summary>Room for a struct stat (144 bytes on x86_64, 128 on arm64) with margin.</summary>
    private const int StatSize = 256;

    /// <summary>stat(2), or lstat(2) when links are not followed, into <paramref name="buffer"/>; false when nothing is there.</summary>
    private static bool StatPath(string path, bool followLinks, Span<byte> buffer)
    {
        PathLookups++;
        return (followLinks ? Stat(path, buffer) : LStat(path, buffer)) == 0;
    }

    /// <summary>st_mode of an open descriptor (fstat(2); an O_PATH descriptor will do); false when fstat fails.</summary>
    private static bool FileMode(int fd, out uint mode)
    {
        Span<byte> buffer = stackalloc byte[StatSize];
        if (FStat(fd, buffer) != 0)
        {
            mode = 0;
            return false;
        }

        mode = ModeOf(buffer);
        return true;
    }

    // struct stat: st_mode follows st_dev, st_ino (and st_nlink on x86_64).
    private static uint ModeOf(ReadOnlySpan<byte> stat)
    {
        var offset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 24 : 16;
        return BitConverter.ToUInt32(stat[offset..(offset + 4)]);
    }

    // struct stat: st_mtim (tv_sec, tv_nsec) at offset 88 on both x86_64 and arm64 (after st_atim at 72).
    private static HostFileTime ModifiedOf(ReadOnlySpan<byte> stat) =>
        new(BitConverter.ToInt64(stat[88..96]), BitConverter.ToInt64(stat[96..104]));

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static partial int FStat(int fd, Span<byte> buffer);

    [LibraryImport("libc", EntryPoint = "lstat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LStat(string path, Span<byte> buffer);

    private const int OPath = 0x200000; // O_PATH (010000000), the same on x86_64 and arm64
    private const int OCloexec = 0x80000; // O_CLOEXEC (02000000): no child process inherits it while it is open

    private const nint SysOpenat2 = 437; // the same number on x86_64 and arm64 (the unified syscall table)
    private const int AtFdcwd = -100;
    private const ulong ResolveNoSymlinks = 0x04; // every component, the last too; magic links as well

    /// <summary>struct open_how (24 bytes).</summary>
    private struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    // glibc has no openat2 wrapper; syscall(2) passes its integer arguments on in registers.
    [LibraryImport("libc", EntryPoint = "syscall", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint Syscall(nint number, int dirfd, string path, ref OpenHow how, nint size);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "readlink")]
    private static partial nint ReadLink(ReadOnlySpan<byte> path, Span<byte> buffer, nint size);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}

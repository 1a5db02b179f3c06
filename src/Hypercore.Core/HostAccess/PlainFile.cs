using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Hypercore.HostAccess;

/// <summary>
/// A file in a directory someone else may write to (a VM's directory belongs to the VMM's user, e.g. qemu-user) was
/// not opened: a symbolic link, something other than a regular file, or a file with a second hard link. The daemon
/// runs as root, so opening it would hand that user whatever the link names (CI s26 review: a planted
/// <c>console.log.1 -&gt; /etc/shadow</c> would have been streamed by <c>vis logs</c>).
/// </summary>
public sealed class NotAPlainFileException(string path, string what)
    : IOException($"{path} is {what}, not a plain file this daemon wrote; it was not opened (someone other than the daemon changed that directory)")
{
    public string FilePath { get; } = path;
}

internal static partial class HostFiles
{
    /// <summary>
    /// Opens <paramref name="path"/> only if its last component is a regular file with one link: open(2) with
    /// O_NOFOLLOW (a link is never followed: ELOOP), O_NONBLOCK (a planted FIFO cannot hang the open) and O_CLOEXEC,
    /// then fstat(2) of the descriptor, so the checks apply to the very file opened, with no window between a check
    /// and the open. Null when nothing is there. The directories above are the daemon's own and are not checked here.
    /// </summary>
    /// <exception cref="NotAPlainFileException">A link, not a regular file, or hard-linked elsewhere.</exception>
    public static SafeFileHandle? OpenPlainFile(string path, FileAccess access)
    {
        var fd = OpenAndStat(path, (access == FileAccess.Read ? ORdOnly : ORdWr) | ONoFollow | ONonBlock | OCloexec, out var mode, out var links, out var errno);
        if (fd < 0)
        {
            return errno switch
            {
                ENoEnt => null,
                ELoop => throw new NotAPlainFileException(path, "a symbolic link"),
                _ => throw new IOException($"open {path}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})"),
            };
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        var kind = KindOf(mode);
        if (kind != HostFileKind.Regular || links != 1)
        {
            handle.Dispose();
            throw new NotAPlainFileException(path, kind != HostFileKind.Regular ? $"a {kind}" : $"a file with {links} hard links");
        }

        return handle;
    }

    /// <summary>
    /// open(2) of <paramref name="path"/> with <paramref name="flags"/>, then fstat(2) of that descriptor, so what the
    /// caller checks of mode and links is the very file opened (<see cref="OpenPlainFile"/>, <see cref="OpenSocketInode"/>).
    /// Negative, with <paramref name="errno"/>, when the open failed; a failed fstat closes the descriptor and throws.
    /// </summary>
    private static int OpenAndStat(string path, int flags, out uint mode, out ulong links, out int errno)
    {
        (mode, links, errno) = (0, 0, 0);
        var fd = Open(path, flags);
        if (fd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return fd;
        }

        Span<byte> stat = stackalloc byte[StatSize];
        if (FStat(fd, stat) != 0)
        {
            errno = Marshal.GetLastPInvokeError();
            _ = Close(fd);
            throw new IOException($"fstat {path}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
        }

        (mode, links) = (ModeOf(stat), LinksOf(stat));
        return fd;
    }

    // struct stat: st_nlink is 8 bytes at 16 on x86_64 (before st_mode), 4 bytes at 20 on arm64 (after st_mode).
    private static ulong LinksOf(ReadOnlySpan<byte> stat) =>
        RuntimeInformation.ProcessArchitecture == Architecture.X64
            ? BitConverter.ToUInt64(stat[16..24])
            : BitConverter.ToUInt32(stat[20..24]);

    private const int ORdOnly = 0;
    private const int ORdWr = 2;
    private const int ONonBlock = 0x800; // O_NONBLOCK (04000), the same on x86_64 and arm64

    // O_NOFOLLOW: 0400000 on x86_64, 0100000 on arm64 (its O_DIRECTORY/O_NOFOLLOW pair differs).
    private static readonly int ONoFollow = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 0x20000 : 0x8000;

    private const int ENoEnt = 2;
    private const int ELoop = 40;
}

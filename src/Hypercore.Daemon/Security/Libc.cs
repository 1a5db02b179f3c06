using System.Runtime.InteropServices;

namespace Hypercore.Daemon.Security;

/// <summary>The few POSIX calls .NET does not offer: flock, chown, getgrnam, lstat's file type.</summary>
internal static partial class Libc
{
    public const int LOCK_EX = 2;
    public const int LOCK_NB = 4;
    public const int EWOULDBLOCK = 11;
    public const int O_RDWR = 2;
    public const int O_CREAT = 0x40;
    public const int O_CLOEXEC = 0x80000;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int flock(int fd, int operation);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int ftruncate(int fd, long length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint write(int fd, ReadOnlySpan<byte> buffer, nint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint read(int fd, Span<byte> buffer, nint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int chown(string path, int owner, int group);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint getgrnam(string name);

    [LibraryImport("libc")]
    public static partial int getegid();

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lstat(string path, Span<byte> buffer);

    /// <summary>Whether the path itself (not a link's target) is a socket. False when that cannot be told.</summary>
    public static bool IsSocket(string path)
    {
        // struct stat's st_mode: offset 24 on x86_64, 16 on the generic layout (arm64).
        var offset = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => 24,
            Architecture.Arm64 => 16,
            _ => -1,
        };
        Span<byte> buffer = stackalloc byte[256];
        if (offset < 0 || lstat(path, buffer) != 0)
        {
            return false;
        }

        const int S_IFMT = 0xF000, S_IFSOCK = 0xC000;
        return (BitConverter.ToInt32(buffer[offset..]) & S_IFMT) == S_IFSOCK;
    }

    /// <summary>The gid of a group name or number, or null when there is no such group.</summary>
    public static int? GroupId(string group)
    {
        if (int.TryParse(group, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var gid))
        {
            return gid;
        }

        var entry = getgrnam(group);

        // struct group { char *gr_name; char *gr_passwd; gid_t gr_gid; char **gr_mem; }
        return entry == 0 ? null : Marshal.ReadInt32(entry, 2 * IntPtr.Size);
    }

    public static string LastError() => Marshal.GetLastPInvokeErrorMessage();
}

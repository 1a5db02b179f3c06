using System.Runtime.InteropServices;

namespace Hypercore.Images.Cache;

/// <summary>The few POSIX calls .NET does not expose: directory fsync, hard links (lchown is HostOwner's, done only as root).</summary>
internal static partial class Native
{
    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int link(string oldPath, string newPath);

    [LibraryImport("libc")]
    private static partial uint geteuid();

    public static bool IsRoot { get; } = geteuid() == 0;

    /// <summary>Makes a rename or create in <paramref name="directory"/> durable.</summary>
    public static void FsyncDirectory(string directory)
    {
        const int ORdonly = 0, ODirectory = 0x10000;
        var fd = open(directory, ORdonly | ODirectory);
        if (fd < 0) return;
        try { fsync(fd); } finally { close(fd); }
    }

    public static void Lchown(string path, int uid, int gid)
    {
        if (IsRoot)
            Hypercore.HostAccess.HostOwner.Set(uid, gid, path);
    }

    public static void HardLink(string existing, string created)
    {
        if (link(existing, created) != 0)
            throw new IOException($"link {existing} -> {created}: errno {Marshal.GetLastPInvokeError()}");
    }
}

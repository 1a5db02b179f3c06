using System.Runtime.InteropServices;

namespace Hypercore.HostAccess;

/// <summary>
/// Gives a file the daemon made to another owner with lchown(2): a link is changed itself, never the file it points
/// to (what <c>chown --no-dereference</c> did, without a process per call: the qemu-user launch ran two, and a
/// snapshot and every jail copy one each).
/// </summary>
public static partial class HostOwner
{
    /// <summary>Sets the owner of each path in turn; the first that fails throws, naming it and the reason.</summary>
    /// <exception cref="IOException">lchown failed (a missing path, EPERM when not root, a read-only file system).</exception>
    public static void Set(int uid, int gid, params ReadOnlySpan<string> paths)
    {
        foreach (var path in paths)
        {
            if (Lchown(path, uid, gid) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new IOException($"chown of {path} to {uid}:{gid} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Lchown(string path, int owner, int group);
}

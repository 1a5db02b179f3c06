using System.Globalization;
using System.Text;

namespace Hypercore.Daemon.Security;

/// <summary>
/// One daemon per state directory: an exclusive flock on &lt;state-dir&gt;/vistarad.lock, held for the daemon's
/// lifetime (the kernel drops it when the process dies, even on kill -9). The file holds the holder's pid, so a second
/// daemon can say who is in the way. Taken before anything else touches the state directory.
/// </summary>
internal sealed class NodeLock : IDisposable
{
    private int _fd;

    private NodeLock(int fd) => _fd = fd;

    /// <summary>The lock, or null with <paramref name="problem"/> naming the holder's pid.</summary>
    public static NodeLock? TryAcquire(string path, out string problem, out bool heldByAnother)
    {
        heldByAnother = false;
        var fd = Libc.open(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC, Convert.ToInt32("644", 8));
        if (fd < 0)
        {
            problem = $"cannot open {path}: {Libc.LastError()}";
            return null;
        }

        if (Libc.flock(fd, Libc.LOCK_EX | Libc.LOCK_NB) != 0)
        {
            var busy = System.Runtime.InteropServices.Marshal.GetLastPInvokeError() == Libc.EWOULDBLOCK;
            var error = Libc.LastError();
            Libc.close(fd);
            heldByAnother = busy;
            problem = busy
                ? $"another vistarad (pid {HolderPid(path)}) is running on this state directory (it holds {path}); " +
                  "stop it first, or give this one another --state-dir"
                : $"cannot lock {path}: {error}";
            return null;
        }

        var pid = Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
        Libc.ftruncate(fd, 0);
        Libc.write(fd, pid, pid.Length);
        problem = "";
        return new NodeLock(fd);
    }

    private static string HolderPid(string path)
    {
        // Read with plain open/read: .NET's file APIs take a shared flock, which the holder's exclusive one refuses.
        var fd = Libc.open(path, Libc.O_CLOEXEC, 0);
        if (fd < 0)
        {
            return "unknown";
        }

        try
        {
            var buffer = new byte[32];
            var read = (int)Libc.read(fd, buffer, buffer.Length);
            var text = read > 0 ? Encoding.ASCII.GetString(buffer, 0, read).Trim() : "";
            return text.Length > 0 ? text : "unknown";
        }
        finally
        {
            Libc.close(fd);
        }
    }

    public void Dispose()
    {
        if (_fd > 0)
        {
            Libc.close(_fd); // releases the flock; the file stays (removing it would race the next daemon)
            _fd = 0;
        }
    }
}

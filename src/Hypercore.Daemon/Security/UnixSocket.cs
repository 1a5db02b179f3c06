using System.Text;

namespace Hypercore.Daemon.Security;

/// <summary>
/// Binds a Unix socket and sets its mode (0660) and group before anyone can connect: Kestrel calls this when it starts
/// (SocketTransportOptions.CreateBoundListenSocket) and only then listens on the socket, so there is no moment at which
/// it accepts connections with the umask's mode. Who may connect is decided by the file's mode and group.
/// </summary>
internal static class UnixSocket
{
    public const int Mode = 0x1B0; // 0660

    /// <summary>The bound (not yet listening) socket; throws <see cref="IOException"/> naming the path.</summary>
    public static System.Net.Sockets.Socket Bind(string path, int? groupId)
    {
        if (File.Exists(path) || Directory.Exists(path) || new FileInfo(path).LinkTarget is not null)
        {
            if (!Libc.IsSocket(path))
            {
                throw new IOException($"{path} exists and is not a socket; remove it or choose another path");
            }

            // A socket left by a daemon that died: the node lock is held, so no live daemon serves it.
            File.Delete(path);
        }

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        try
        {
            socket.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
            File.SetUnixFileMode(path, (UnixFileMode)Mode);
            if (groupId is { } gid && Libc.chown(path, -1, gid) != 0)
            {
                throw new IOException($"cannot give {path} to group {gid}: {Libc.LastError()}");
            }

            return socket;
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            socket.Dispose();
            throw new IOException($"cannot bind {path}: {ex.Message}", ex);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

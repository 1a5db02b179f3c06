using System.Text;

namespace Hypercore.Daemon.Security;

/// <summary>
/// Binds a Unix socket and sets its mode (0660) and group before anyone can connect: the socket is handed to Kestrel
/// as a bound, not yet listening, file descriptor (Kestrel listens on it), so there is no moment at which it accepts
/// connections with the umask's mode. Who may connect is decided by the file's mode and group.
/// </summary>
internal static class UnixSocket
{
    public const int Mode = 0x1B0; // 0660

    /// <summary>The bound socket's descriptor; throws <see cref="IOException"/> naming the path.</summary>
    public static int Bind(string path, int? groupId)
    {
        var address = Address(path);
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
        var fd = Libc.socket(Libc.AF_UNIX, Libc.SOCK_STREAM | Libc.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            throw new IOException($"socket() for {path}: {Libc.LastError()}");
        }

        try
        {
            if (Libc.bind(fd, address, address.Length) != 0)
            {
                throw new IOException($"cannot bind {path}: {Libc.LastError()}");
            }

            File.SetUnixFileMode(path, (UnixFileMode)Mode);
            if (groupId is { } gid && Libc.chown(path, -1, gid) != 0)
            {
                throw new IOException($"cannot give {path} to group {gid}: {Libc.LastError()}");
            }

            return fd;
        }
        catch
        {
            Libc.close(fd);
            throw;
        }
    }

    /// <summary>struct sockaddr_un: sa_family_t (2 bytes, native order) then the NUL-terminated path.</summary>
    private static byte[] Address(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path);
        if (bytes.Length > 107)
        {
            throw new IOException($"{path} is longer than 107 bytes (sockaddr_un)");
        }

        var address = new byte[2 + bytes.Length + 1];
        BitConverter.TryWriteBytes(address.AsSpan(0, 2), (ushort)Libc.AF_UNIX);
        bytes.CopyTo(address, 2);
        return address;
    }
}

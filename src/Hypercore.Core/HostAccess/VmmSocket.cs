using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Hypercore.HostAccess;

/// <summary>
/// A VMM's socket path (QMP, a VMM API, a migration socket) was not connected to: a symbolic link, something other
/// than a socket, or a socket with a second hard link. The directory holding it may belong to the VMM's user (with
/// qemu-user, <c>vmm/</c>; a Firecracker jail), and the daemon runs as root, so following a link planted there would
/// let a guest that took over its VMM point the daemon at any socket on the host.
/// </summary>
public sealed class NotAVmmSocketException(string path, string what)
    : IOException($"{path} is {what}, not the socket the VMM made; the daemon did not connect to it (someone other than the daemon changed that directory: delete the VM)")
{
    public string SocketPath { get; } = path;
}

/// <summary>Connecting to a VMM's Unix socket without following a link in the last component of its path.</summary>
public static class VmmSocket
{
    /// <summary>
    /// Connects <paramref name="socket"/> to the Unix socket at <paramref name="path"/> only if the path's last
    /// component is itself a socket with one link: open(2) with O_PATH|O_NOFOLLOW, fstat(2) of that descriptor, then
    /// connect(2) to <c>/proc/self/fd/N</c>, which names that very inode, so nothing can be swapped in between the
    /// check and the connect. connect(2) on the path itself would follow a link. The directories above are the
    /// daemon's own (a VM's directory stays root's) and are not checked here.
    /// </summary>
    /// <exception cref="SocketException">Nothing is there yet (<see cref="SocketError.AddressNotAvailable"/>, as a
    /// connect to a missing path), or the connect failed.</exception>
    /// <exception cref="NotAVmmSocketException">A link, not a socket, or hard-linked elsewhere.</exception>
    public static async Task ConnectAsync(Socket socket, string path, CancellationToken ct)
    {
        var fd = HostFiles.OpenSocketInode(path);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint($"/proc/self/fd/{fd}"), ct);
        }
        finally
        {
            HostFiles.CloseDescriptor(fd);
        }
    }
}

internal static partial class HostFiles
{
    /// <summary>An O_PATH descriptor of the socket at <paramref name="path"/>, which must be a socket with one link.</summary>
    internal static int OpenSocketInode(string path)
    {
        // With O_PATH|O_NOFOLLOW a link is opened itself (no ELOOP), so fstat reports it as a link.
        var fd = OpenAndStat(path, OPath | ONoFollow | OCloexec, out var mode, out var links, out var errno);
        if (fd < 0)
        {
            throw errno == ENoEnt
                ? new SocketException((int)SocketError.AddressNotAvailable, $"{path}: no such socket")
                : new IOException($"open {path}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
        }

        if ((mode & TypeMask) != 0xC000 || links != 1)
        {
            _ = Close(fd);
            throw new NotAVmmSocketException(path, (mode & TypeMask) switch
            {
                SymlinkType => "a symbolic link",
                0xC000 => $"a socket with {links} hard links",
                _ => $"a {KindOf(mode)}",
            });
        }

        return fd;
    }

    internal static void CloseDescriptor(int fd) => _ = Close(fd);
}

using System.Diagnostics;
using System.Net.Sockets;
using Hypercore.HostAccess;

namespace Hypercore.Core.Tests.HostAccess;

/// <summary>
/// <see cref="VmmSocket.ConnectAsync"/>: how the daemon, as root, connects to a socket in a directory the VMM's user
/// can write to (qemu-user's <c>vmm/</c>, a Firecracker jail). Each refusal is checked on the listener too: it must
/// see no connection at all.
/// </summary>
public sealed class VmmSocketTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hc-vmmsock-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private Socket Listen(string name)
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(Path.Combine(_dir, name)));
        listener.Listen(4);
        return listener;
    }

    /// <summary>This process's descriptors opened on <paramref name="path"/> itself (a connected socket reads "socket:[inode]").</summary>
    private static List<string> OpenDescriptorsNaming(string path) =>
        [.. Directory.GetFiles("/proc/self/fd").Where(fd => new FileInfo(fd).LinkTarget == path)];

    private static Socket NewClient() => new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);

    [Test]
    public async Task Socket_IsConnected_AndTheDescriptorItWentThroughIsClosed()
    {
        using var listener = Listen("qmp.sock");
        using var client = NewClient();

        await VmmSocket.ConnectAsync(client, Path.Combine(_dir, "qmp.sock"), CancellationToken.None);

        using var accepted = await listener.AcceptAsync();
        await client.SendAsync("hello"u8.ToArray());
        var buffer = new byte[5];
        (await accepted.ReceiveAsync(buffer)).Should().Be(5);
        buffer.Should().Equal("hello"u8.ToArray());
        OpenDescriptorsNaming(Path.Combine(_dir, "qmp.sock")).Should().BeEmpty("the O_PATH descriptor the connect went through is closed");
    }

    [Test]
    public async Task Missing_IsTheSocketErrorOfAConnectToNothing()
    {
        using var client = NewClient();

        var act = () => VmmSocket.ConnectAsync(client, Path.Combine(_dir, "qmp.sock"), CancellationToken.None);

        (await act.Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.AddressNotAvailable);
    }

    [Test]
    public async Task SymbolicLink_ToAnotherListeningSocket_IsRefused_AndThatSocketSeesNoConnection()
    {
        using var hostService = Listen("host-service.sock");
        var link = Path.Combine(_dir, "qmp.sock");
        File.CreateSymbolicLink(link, Path.Combine(_dir, "host-service.sock"));
        using var client = NewClient();

        var act = () => VmmSocket.ConnectAsync(client, link, CancellationToken.None);

        (await act.Should().ThrowAsync<NotAVmmSocketException>()).Which.Message.Should().StartWith($"{link} is a symbolic link, not the socket the VMM made");
        hostService.Poll(200_000, SelectMode.SelectRead).Should().BeFalse("nothing connected to the link's target");
        client.Connected.Should().BeFalse();
    }

    [Test]
    public async Task HardLink_OfAnotherListeningSocket_IsRefused_AndThatSocketSeesNoConnection()
    {
        using var otherVm = Listen("other-qmp.sock");
        var link = Path.Combine(_dir, "qmp.sock");
        using (var ln = Process.Start("ln", [Path.Combine(_dir, "other-qmp.sock"), link]))
        {
            await ln.WaitForExitAsync();
            ln.ExitCode.Should().Be(0);
        }

        using var client = NewClient();

        var act = () => VmmSocket.ConnectAsync(client, link, CancellationToken.None);

        (await act.Should().ThrowAsync<NotAVmmSocketException>()).Which.Message.Should().StartWith($"{link} is a socket with 2 hard links");
        otherVm.Poll(200_000, SelectMode.SelectRead).Should().BeFalse();
    }

    [Test]
    public async Task RegularFile_IsRefused()
    {
        var path = Path.Combine(_dir, "qmp.sock");
        File.WriteAllText(path, "");
        using var client = NewClient();

        var act = () => VmmSocket.ConnectAsync(client, path, CancellationToken.None);

        (await act.Should().ThrowAsync<NotAVmmSocketException>()).Which.SocketPath.Should().Be(path);
    }
}

using System.Net.Sockets;
using Hypercore.Client;

namespace Hypercore.Cli.Tests.Client;

/// <summary>Where vis and HypercoreClient.ConnectLocal go when nothing is given, and the token file form clients read.</summary>
public sealed class LocalSocketDefaultTests
{
    private DirectoryInfo _dir = null!;

    private string SocketPath => Path.Combine(_dir.FullName, "vistarad.sock");

    [SetUp]
    public void MakeDir() => _dir = Directory.CreateTempSubdirectory("hc-sec-client-");

    [TearDown]
    public void RemoveDir() => _dir.Delete(recursive: true);

    [Test]
    public void Default_NoSocket_IsLocalhost9090() =>
        HypercoreAddress.Default(SocketPath).Should().Be(HypercoreAddress.DefaultHost);

    [Test]
    public void Default_SocketWithADaemonListening_IsTheSocket()
    {
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        listener.Listen();

        HypercoreAddress.Default(SocketPath).Should().Be("unix://" + SocketPath);
    }

    [Test]
    public void Default_StaleSocketNobodyListensOn_IsLocalhost9090()
    {
        using (var gone = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            gone.Bind(new UnixDomainSocketEndPoint(SocketPath)); // bound, never listening: connect is refused
        }

        HypercoreAddress.Default(SocketPath).Should().Be(HypercoreAddress.DefaultHost);
    }

    [TestCase("unix:///var/lib/hypercore/vistarad.sock", "/var/lib/hypercore/vistarad.sock")]
    [TestCase("localhost:9090", null)]
    public void UnixSocketPath_OfAnAddress(string address, string? path) =>
        HypercoreAddress.UnixSocketPath(address).Should().Be(path);

    [Test]
    public void UnixSocketPath_Relative_IsRefused()
    {
        var parse = () => HypercoreAddress.UnixSocketPath("unix://vistarad.sock");

        parse.Should().Throw<FormatException>().WithMessage("*unix:///absolute/path*");
    }

    [Test]
    public void Parse_WithTls_AddressWithoutSchemeIsHttps() =>
        HypercoreAddress.Parse("10.0.0.5:9090", tls: true).ToString().Should().Be("https://10.0.0.5:9090/");

    [Test]
    public void ReadToken_TheDaemonsOwnTokenFile_GivesTheFirstToken()
    {
        var file = Path.Combine(_dir.FullName, "tokens");
        File.WriteAllText(file, "# token identity\n\nfirst-token-0123456789abcdef ci\nsecond-token-0123456789abcdef bob\n");

        ClientTransport.ReadToken(file).Should().Be("first-token-0123456789abcdef");
    }

    [Test]
    public void Connect_CertificateWithoutKey_IsRefused()
    {
        var connect = () => HypercoreClient.Connect("localhost:9090", new HypercoreClientOptions { TlsCertFile = "/etc/hypercore/alice.pem" });

        connect.Should().Throw<ArgumentException>().WithMessage("*TlsCertFile and TlsKeyFile go together*");
    }
}

using System.Net;
using System.Net.Sockets;
using System.Text;
using Hypercore.GuestHealth;

namespace Hypercore.Core.Tests.GuestHealth;

/// <summary>The real TCP/HTTP probes against listeners on 127.0.0.1 (never off the machine).</summary>
public sealed class SocketNetworkProbesTests
{
    private readonly SocketNetworkProbes _probes = new(TimeProvider.System);

    [OneTimeTearDown]
    public void TearDown() => _probes.Dispose();

    [Test]
    public async Task Tcp_Listening_Succeeds()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;

        var result = await _probes.TcpAsync(IPAddress.Loopback, port, TimeSpan.FromSeconds(5), CancellationToken.None);

        result.Success.Should().BeTrue(result.Message);
        result.Message.Should().Be($"tcp connect to 127.0.0.1:{port} succeeded");
    }

    [Test]
    public async Task Tcp_NothingListening_FailsWithTheReason()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        var result = await _probes.TcpAsync(IPAddress.Loopback, port, TimeSpan.FromSeconds(5), CancellationToken.None);

        result.Success.Should().BeFalse();
        result.Message.Should().StartWith($"tcp connect to 127.0.0.1:{port} failed: ").And.Contain("refused");
    }

    [TestCase(200, true)]
    [TestCase(302, true)]
    [TestCase(503, false)]
    public async Task Http_StatusCode_DecidesSuccess(int code, bool success)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = ServeOnceAsync(listener, code);

        var result = await _probes.HttpGetAsync(IPAddress.Loopback, port, "/healthz", TimeSpan.FromSeconds(5), CancellationToken.None);

        (await server).Should().StartWith("GET /healthz HTTP/1.1");
        result.Success.Should().Be(success, result.Message);
        result.Message.Should().StartWith($"http GET http://127.0.0.1:{port}/healthz returned {code}");
    }

    [Test]
    public async Task Http_GuestNeverAnswers_TimesOut()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start(); // accepts into the backlog, never answers

        var result = await _probes.HttpGetAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port, "/", TimeSpan.FromSeconds(1), CancellationToken.None);

        result.Success.Should().BeFalse();
        result.Message.Should().EndWith("timed out after 1 s");
    }

    private static async Task<string> ServeOnceAsync(TcpListener listener, int code)
    {
        using var client = await listener.AcceptTcpClientAsync();
        var stream = client.GetStream();
        var buffer = new byte[4096];
        var request = new StringBuilder();
        while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer);
            if (n == 0)
            {
                break;
            }

            request.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        var response = $"HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(response));
        return request.ToString();
    }
}

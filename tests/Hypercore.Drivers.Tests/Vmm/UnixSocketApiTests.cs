using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>The Polly pipeline at the edge: connect failures are retried (capped), answered requests never are.</summary>
[NonParallelizable]
public sealed class UnixSocketApiTests
{
    private Scratch _scratch = null!;

    [SetUp]
    public void SetUp() => _scratch = new Scratch();

    [TearDown]
    public async Task TearDown() => await _scratch.DisposeAsync();

    /// <summary>A one-shot HTTP server on a Unix socket that answers every request with <paramref name="status"/> and counts connections.</summary>
    private static async Task<int> ServeAsync(string path, TimeSpan delay, string status, int connections, CancellationToken ct)
    {
        await Task.Delay(delay, ct);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen();
        var served = 0;
        while (served < connections)
        {
            using var client = await listener.AcceptAsync(ct);
            served++;
            var buffer = new byte[4096];
            await client.ReceiveAsync(buffer, ct);
            await client.SendAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), ct);
        }

        return served;
    }

    [Test]
    public async Task Send_SocketAppearsLate_RetriesTheConnectAndSucceeds()
    {
        var path = Path.Combine(_scratch.Root, "late.sock");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var server = ServeAsync(path, TimeSpan.FromMilliseconds(400), "204 No Content", 1, cts.Token);
        using var api = new UnixSocketApi(path, new ApiPolicy(TimeSpan.FromSeconds(10), 8, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(400)), TimeProvider.System);

        var response = await api.PutAsync("/actions", "{}", cts.Token);

        response.Status.Should().Be(HttpStatusCode.NoContent);
        (await server).Should().Be(1);
    }

    [Test]
    public async Task Send_NobodyListens_GivesUpAfterTheCappedRetries()
    {
        using var api = new UnixSocketApi(Path.Combine(_scratch.Root, "none.sock"), new ApiPolicy(TimeSpan.FromSeconds(10), 2, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(100)), TimeProvider.System);
        var watch = Stopwatch.StartNew();

        var act = () => api.GetAsync("/", default);

        (await act.Should().ThrowAsync<HttpRequestException>()).Which.Should().Match<HttpRequestException>(e => UnixSocketApi.IsConnectFailure(e));
        watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(5));
    }

    [Test]
    public async Task Send_ServerAnswersWithAnError_IsNotRetried()
    {
        var path = Path.Combine(_scratch.Root, "err.sock");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var server = ServeAsync(path, TimeSpan.Zero, "500 Internal Server Error", 1, cts.Token);
        await Eventually.TrueAsync(() => File.Exists(path), TimeSpan.FromSeconds(10), "the test server socket");
        using var api = new UnixSocketApi(path, new ApiPolicy(TimeSpan.FromSeconds(10), 5, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(100)), TimeProvider.System);

        var response = await api.PutAsync("/actions", "{\"action_type\":\"InstanceStart\"}", cts.Token);

        response.Status.Should().Be(HttpStatusCode.InternalServerError);
        (await server).Should().Be(1, "a request that reached the VMM must not be sent twice");
    }

    [Test]
    public async Task Send_BodyNeitherJsonNodeNorText_IsRefusedBeforeAnyConnect()
    {
        using var api = new UnixSocketApi(Path.Combine(_scratch.Root, "none.sock"), new ApiPolicy(TimeSpan.FromSeconds(10), 2, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(100)), TimeProvider.System);

        var send = () => api.PutAsync("/actions", new { action_type = "InstanceStart" }, CancellationToken.None);

        (await send.Should().ThrowAsync<ArgumentException>()).Which.Message.Should().Contain("JsonNode or JSON text");
    }
}

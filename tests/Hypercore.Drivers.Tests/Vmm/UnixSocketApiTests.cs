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

    /// <summary>A jail is the VMM's to write: a link planted at the API socket's path must not be followed (nor retried).</summary>
    [Test]
    public async Task Send_SocketPathIsALinkToAnotherServer_IsRefusedWithoutRetries_AndThatServerSeesNoRequest()
    {
        var elsewhere = Path.Combine(_scratch.Root, "host.sock");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var server = ServeAsync(elsewhere, TimeSpan.Zero, "204 No Content", 1, cts.Token);
        await Eventually.TrueAsync(() => File.Exists(elsewhere), TimeSpan.FromSeconds(10), "the test server socket");
        var path = Path.Combine(_scratch.Root, "api.sock");
        File.CreateSymbolicLink(path, elsewhere);
        using var api = new UnixSocketApi(path, new ApiPolicy(TimeSpan.FromSeconds(30), 5, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(3)), TimeProvider.System);
        var watch = Stopwatch.StartNew();

        var act = () => api.PutAsync("/actions", "{}", cts.Token);

        var error = (await act.Should().ThrowAsync<HttpRequestException>()).Which;
        error.InnerException.Should().BeOfType<Hypercore.HostAccess.NotAVmmSocketException>().Which.Message.Should().StartWith($"{path} is a symbolic link");
        UnixSocketApi.IsConnectFailure(error).Should().BeFalse("a moment does not fix a planted link");
        watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(3), "no retry (the backoff is 3 s)");
        await Task.Delay(200);
        server.IsCompleted.Should().BeFalse("the link's target never got a connection");
        await cts.CancelAsync();
        await FluentActions.Awaiting(() => server).Should().ThrowAsync<OperationCanceledException>();
    }

    [Test]
    public async Task Send_BodyNeitherJsonNodeNorText_IsRefusedBeforeAnyConnect()
    {
        using var api = new UnixSocketApi(Path.Combine(_scratch.Root, "none.sock"), new ApiPolicy(TimeSpan.FromSeconds(10), 2, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(100)), TimeProvider.System);

        var send = () => api.PutAsync("/actions", new { action_type = "InstanceStart" }, CancellationToken.None);

        (await send.Should().ThrowAsync<ArgumentException>()).Which.Message.Should().Contain("JsonNode or JSON text");
    }
}

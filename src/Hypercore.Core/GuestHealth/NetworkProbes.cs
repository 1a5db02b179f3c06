using System.Net;
using System.Net.Sockets;
using Hypercore.MicroVms;

namespace Hypercore.GuestHealth;

/// <summary>One probe's answer; the message goes into the GuestReady condition or the liveness log line.</summary>
public readonly record struct ProbeResult(bool Success, string Message)
{
    public static ProbeResult Ok(string message) => new(true, message);

    public static ProbeResult Fail(string message) => new(false, message);
}

/// <summary>The network half of probing (a TCP connect, an HTTP GET), apart so tests can stand in for it.</summary>
public interface INetworkProbes
{
    Task<ProbeResult> TcpAsync(IPAddress address, int port, TimeSpan timeout, CancellationToken cancellationToken);

    Task<ProbeResult> HttpGetAsync(IPAddress address, int port, string path, TimeSpan timeout, CancellationToken cancellationToken);
}

/// <summary>Real sockets. No proxy is ever used (a daemon's proxy variables must not redirect a probe of a guest).</summary>
public sealed class SocketNetworkProbes : INetworkProbes, IDisposable
{
    private readonly TimeProvider _time;
    private readonly HttpClient _http;

    public SocketNetworkProbes(TimeProvider time)
    {
        _time = time;
        _http = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false, // a redirect elsewhere is the guest's answer (3xx = success), never followed
            UseCookies = false,
            PooledConnectionLifetime = TimeSpan.Zero,
            MaxResponseHeadersLength = 64,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("hypercore-probe/1");
        _http.DefaultRequestHeaders.ConnectionClose = true;
    }

    public async Task<ProbeResult> TcpAsync(IPAddress address, int port, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(timeout, _time);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        var endpoint = Endpoint(address, port);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(address, port), limit.Token);
            return ProbeResult.Ok($"tcp connect to {endpoint} succeeded");
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return ProbeResult.Fail($"tcp connect to {endpoint} timed out after {timeout.TotalSeconds:0.#} s");
        }
        catch (SocketException ex)
        {
            return ProbeResult.Fail($"tcp connect to {endpoint} failed: {ex.Message}");
        }
    }

    public async Task<ProbeResult> HttpGetAsync(IPAddress address, int port, string path, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(timeout, _time);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var url = $"http://{Endpoint(address, port)}{path}";
        try
        {
            using var response = await _http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, limit.Token);
            var code = (int)response.StatusCode;
            return code is >= 200 and < 400
                ? ProbeResult.Ok($"http GET {url} returned {code}")
                : ProbeResult.Fail($"http GET {url} returned {code} {response.ReasonPhrase}");
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return ProbeResult.Fail($"http GET {url} timed out after {timeout.TotalSeconds:0.#} s");
        }
        catch (HttpRequestException ex)
        {
            return ProbeResult.Fail($"http GET {url} failed: {ex.Message}");
        }
    }

    public void Dispose() => _http.Dispose();

    private static string Endpoint(IPAddress address, int port) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]:{port}" : $"{address}:{port}";
}

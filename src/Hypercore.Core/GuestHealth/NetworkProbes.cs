using System.Net;
using System.Net.NetworkInformation;
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

/// <summary>
/// Where a TCP or HTTP probe goes: the guest's first address, from status (what the node's networking leased or
/// learned) before the spec's static addresses. The daemon runs as root, so an address that is the host itself
/// (loopback, unspecified, one of the host's own addresses) is refused unless the node allows it on purpose: a
/// spec must not be a way to scan the node's own services.
/// </summary>
public static class ProbeTargets
{
    public static (IPAddress? Address, string? Problem) Resolve(MicroVm vm, bool allowHostTargets, Func<IReadOnlyCollection<IPAddress>>? hostAddresses = null)
    {
        var candidates = vm.Status.Addresses.Concat(vm.Spec.Interfaces.Select(i => i.Address).OfType<string>());
        foreach (var text in candidates)
        {
            var bare = text.Split('/')[0];
            if (!IPAddress.TryParse(bare, out var address))
            {
                continue;
            }

            if (allowHostTargets)
            {
                return (address, null);
            }

            if (IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) ||
                address.IsIPv6Multicast || (address.AddressFamily == AddressFamily.InterNetwork && address.GetAddressBytes()[0] >= 224) ||
                (hostAddresses ?? HostAddresses)().Contains(address))
            {
                return (null, $"the guest address {address} is the host itself or not a unicast address; probes never reach the node's own " +
                    "services unless the daemon is started with probe-host-targets = true (Health:AllowHostTargets)");
            }

            return (address, null);
        }

        return (null, "the VM has no guest address to probe yet (no status address and no static interface address); give an interface a static address or use a console probe");
    }

    private static IReadOnlyCollection<IPAddress> HostAddresses()
    {
        try
        {
            return NetworkInterface.GetAllNetworkInterfaces()
                .SelectMany(n => n.GetIPProperties().UnicastAddresses.Select(a => a.Address))
                .ToHashSet();
        }
        catch (NetworkInformationException)
        {
            return [];
        }
    }
}

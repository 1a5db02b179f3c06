using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hypercore.HostAccess;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Hypercore.Drivers.Vmm;

/// <summary>An HTTP answer from a VMM API: status and body text.</summary>
public sealed record ApiResponse(HttpStatusCode Status, string Body)
{
    public bool IsSuccess => (int)Status is >= 200 and < 300;

    public JsonNode? Json => Body.Length == 0 ? null : JsonNode.Parse(Body);
}

/// <summary>Timeouts and retry limits of <see cref="UnixSocketApi"/>.</summary>
public sealed record ApiPolicy(TimeSpan RequestTimeout, int ConnectRetries, TimeSpan RetryDelay, TimeSpan MaxRetryDelay);

/// <summary>
/// REST over a Unix domain socket (Firecracker's --api-sock, Cloud Hypervisor's --api-socket) with HttpClient and
/// SocketsHttpHandler.ConnectCallback. Every call goes through one Polly pipeline: a per-attempt timeout inside a
/// capped exponential retry whose ShouldHandle accepts only a failed connect (ECONNREFUSED / ENOENT while the VMM
/// is still creating its socket). A request that reached the server is never retried, so PUT /actions is not sent
/// twice.
/// </summary>
public sealed class UnixSocketApi : IDisposable
{
    private readonly HttpClient _http;
    private readonly ResiliencePipeline _pipeline;

    public UnixSocketApi(string socketPath, ApiPolicy policy, TimeProvider time)
    {
        SocketPath = socketPath;
        var handler = new SocketsHttpHandler
        {
            // One VMM, one socket: a fresh connection per client is cheap, and never outlives a VMM restart.
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(5),
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await VmmSocket.ConnectAsync(socket, socketPath, ct); // never through a link: a jail is the VMM's to write
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://localhost/"), Timeout = Timeout.InfiniteTimeSpan };
        _pipeline = BuildPipeline(policy, time);
    }

    public string SocketPath { get; }

    /// <summary>
    /// Fails with a clear message when a socket path would not fit sockaddr_un (107 bytes and a NUL): the VMM would
    /// otherwise fail to bind with an obscure error. Keep RuntimeDirectory short.
    /// </summary>
    public static void EnsurePathFits(string socketPath)
    {
        if (!PathFits(socketPath))
        {
            throw new DriverException("HypervisorError", $"socket path {socketPath} is longer than 107 bytes; use a shorter RuntimeDirectory");
        }
    }

    /// <summary>Whether <paramref name="socketPath"/> fits sockaddr_un (107 bytes and a NUL).</summary>
    public static bool PathFits(string socketPath) => System.Text.Encoding.UTF8.GetByteCount(socketPath) <= 107;

    /// <summary>The pipeline: retry (connect failures only, capped) around a per-attempt timeout.</summary>
    public static ResiliencePipeline BuildPipeline(ApiPolicy policy, TimeProvider time) =>
        new ResiliencePipelineBuilder { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>(IsConnectFailure),
                MaxRetryAttempts = Math.Max(policy.ConnectRetries, 1),
                BackoffType = DelayBackoffType.Exponential,
                Delay = policy.RetryDelay,
                MaxDelay = policy.MaxRetryDelay,
                UseJitter = false,
            })
            .AddTimeout(policy.RequestTimeout)
            .Build();

    /// <summary>The connection could not be made (nobody listening yet, or the socket file is missing).</summary>
    public static bool IsConnectFailure(HttpRequestException ex) =>
        ex.InnerException is not NotAVmmSocketException && // a planted link: a moment does not fix it
        (ex.HttpRequestError == HttpRequestError.ConnectionError ||
         ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.AddressNotAvailable });

    public Task<ApiResponse> GetAsync(string path, CancellationToken ct) => SendAsync(HttpMethod.Get, path, null, ct);

    public Task<ApiResponse> PutAsync(string path, object? body, CancellationToken ct) => SendAsync(HttpMethod.Put, path, body, ct);

    public Task<ApiResponse> PatchAsync(string path, object? body, CancellationToken ct) => SendAsync(HttpMethod.Patch, path, body, ct);

    /// <summary>
    /// Sends one request. Throws <see cref="HttpRequestException"/> when the VMM cannot be reached after the retries
    /// and <see cref="TimeoutRejectedException"/> when it does not answer in time; an HTTP error status is returned,
    /// not thrown, so that each driver can read its own error body shape.
    /// </summary>
    public async Task<ApiResponse> SendAsync(HttpMethod method, string path, object? body, CancellationToken ct)
    {
        var payload = body switch
        {
            null => null,
            JsonNode node => node.ToJsonString(),
            string s => s,
            // Reflection-based serialization of an arbitrary object would keep the daemon from trimming/Native AOT.
            _ => throw new ArgumentException($"a VMM API body is a JsonNode or JSON text, not a {body.GetType().Name}", nameof(body)),
        };
        return await _pipeline.ExecuteAsync(
            async token =>
            {
                using var request = new HttpRequestMessage(method, path.TrimStart('/'));
                if (payload is not null)
                {
                    request.Content = new StringContent(payload, Encoding.UTF8);
                    request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                }

                request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
                using var response = await _http.SendAsync(request, token);
                var text = await response.Content.ReadAsStringAsync(token);
                return new ApiResponse(response.StatusCode, text);
            },
            ct);
    }

    /// <summary>
    /// Polls GET <paramref name="path"/> until the VMM answers (it creates its socket a moment after starting),
    /// failing fast when the process dies on the way and naming its last output on a timeout.
    /// </summary>
    public async Task WaitUntilAnswersAsync(
        string path, int pid, string label, string outputLog, TimeSpan timeout, TimeProvider time,
        Func<ApiResponse, DriverException> error, CancellationToken ct)
    {
        var ready = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddTimeout(timeout)
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>(IsConnectFailure),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Constant,
                Delay = TimeSpan.FromMilliseconds(50),
            })
            .Build();
        try
        {
            await ready.ExecuteAsync(
                async token =>
                {
                    if (!HostProcess.IsAlive(pid))
                    {
                        throw new DriverException("HypervisorError", $"{label} exited during start: {VmmOutput.Tail(outputLog)}");
                    }

                    var response = await GetAsync(path, token);
                    if (!response.IsSuccess)
                    {
                        throw error(response);
                    }
                },
                ct);
        }
        catch (TimeoutRejectedException ex)
        {
            throw new DriverException("HypervisorError", $"{label} API socket {SocketPath} did not answer within {timeout.TotalSeconds:0.#} s: {VmmOutput.Tail(outputLog)}", ex);
        }
    }

    /// <summary>Sends a request that must succeed; an error answer becomes <paramref name="error"/>'s exception.</summary>
    public async Task<ApiResponse> ExpectSuccessAsync(HttpMethod method, string path, JsonNode? body, Func<ApiResponse, DriverException> error, CancellationToken ct)
    {
        var response = await SendAsync(method, path, body, ct);
        return response.IsSuccess ? response : throw error(response);
    }

    public void Dispose() => _http.Dispose();
}

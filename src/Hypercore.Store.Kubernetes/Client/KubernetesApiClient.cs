using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Hypercore.Store.Kubernetes.Client;

/// <summary>
/// The few Kubernetes REST calls the store and its controllers make, on HttpClient with JSON as
/// <see cref="JsonNode"/>s: no reflection-based serializer, so the daemon can be published as Native AOT
/// (KubernetesClient's models and its JSON converters are not trim-safe; KubernetesClient.Aot has no watch and no
/// custom-object calls). The operations are named as in the Kubernetes OpenAPI (and KubernetesClient), so RBAC
/// can be checked against the calls in the source. A non-2xx answer is a <see cref="KubernetesApiException"/>;
/// transport failures stay <see cref="HttpRequestException"/>s.
/// </summary>
public sealed class KubernetesApiClient : IDisposable
{
    /// <summary>How long a request may wait for the response headers (KubernetesClient's HttpClientTimeout).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(100);

    private static readonly TimeSpan TokenFileRefresh = TimeSpan.FromMinutes(1);

    private readonly HttpClient _http;
    private readonly KubernetesApiConfig _config;
    private readonly TimeProvider _time;
    private readonly string _base;
    private readonly SemaphoreSlim _tokenGate = new(1, 1);
    private (string Token, DateTimeOffset Until)? _cachedToken;

    public KubernetesApiClient(KubernetesApiConfig config) : this(config, TimeProvider.System)
    {
    }

    public KubernetesApiClient(KubernetesApiConfig config, TimeProvider time)
    {
        _config = config;
        _time = time;
        _base = config.Server.AbsoluteUri.TrimEnd('/');
        var handler = new SocketsHttpHandler
        {
            // As KubernetesClient: keep long-lived watch connections alive through idle NATs and load balancers.
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            KeepAlivePingDelay = TimeSpan.FromMinutes(3),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(30),
            EnableMultipleHttp2Connections = true,
        };
        if (config.Server.Scheme == Uri.UriSchemeHttps)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = ValidateServerCertificate;
            if (config.ClientCertificate is { } cert)
            {
                handler.SslOptions.ClientCertificates = [cert];
            }
        }

        _http = new HttpClient(handler) { Timeout = DefaultTimeout };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("vistarad", "1"));
        CustomObjects = new CustomObjectsApi(this);
        CoreV1 = new CoreV1Api(this);
        CoordinationV1 = new CoordinationV1Api(this);
    }

    public CustomObjectsApi CustomObjects { get; }

    public CoreV1Api CoreV1 { get; }

    public CoordinationV1Api CoordinationV1 { get; }

    public void Dispose()
    {
        _http.Dispose();
        _tokenGate.Dispose();
    }

    internal const string Json = "application/json";

    internal const string MergePatch = "application/merge-patch+json";

    /// <summary>One request; the response's JSON (null for an empty body).</summary>
    internal async Task<JsonNode?> SendAsync(HttpMethod method, string path, string? query, JsonNode? body, CancellationToken ct, string contentType = Json)
    {
        using var request = await RequestAsync(method, path, query, body, contentType, ct);
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, ct);
        var content = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode)
        {
            throw new KubernetesApiException(request.Method, request.RequestUri!, response.StatusCode, response.ReasonPhrase, content);
        }

        return content.Length == 0 ? null : JsonNode.Parse(content);
    }

    /// <summary>
    /// One watch request: events as they arrive until the server ends the stream. An ERROR event (a Status, e.g. 410 Gone)
    /// and a line that does not parse go to <paramref name="onError"/> and the stream goes on, as KubernetesClient's watcher
    /// does; a non-2xx answer to the request itself is thrown.
    /// </summary>
    internal async IAsyncEnumerable<(WatchEventType Type, JsonObject Object)> WatchAsync(
        string path, string query, Action<Exception>? onError, [EnumeratorCancellation] CancellationToken ct)
    {
        using var request = await RequestAsync(HttpMethod.Get, path, query, null, Json, ct);
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!response.IsSuccessStatusCode)
        {
            var content = await response.Content.ReadAsStringAsync(ct);
            throw new KubernetesApiException(request.Method, request.RequestUri!, response.StatusCode, response.ReasonPhrase, content);
        }

        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.Length == 0)
            {
                continue;
            }

            (WatchEventType Type, JsonObject Object)? ev = null;
            try
            {
                var node = JsonNode.Parse(line) as JsonObject ?? throw new JsonException("a watch event that is not a JSON object");
                var obj = node["object"] as JsonObject ?? throw new JsonException("a watch event without an object");
                node.Remove("object"); // the caller's to keep or to put into another document
                if ((string?)obj["kind"] == "Status")
                {
                    onError?.Invoke(new KubernetesStatusException(obj));
                }
                else
                {
                    ev = (ParseType((string?)node["type"]), obj);
                }
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
            {
                onError?.Invoke(ex);
            }

            if (ev is { } e)
            {
                yield return e;
            }
        }
    }

    internal static string Query(params (string Name, string? Value)[] parameters)
    {
        var sb = new StringBuilder();
        foreach (var (name, value) in parameters)
        {
            if (value is null)
            {
                continue;
            }

            sb.Append(sb.Length == 0 ? '?' : '&').Append(name).Append('=').Append(Uri.EscapeDataString(value));
        }

        return sb.ToString();
    }

    internal static string Segment(string value) => Uri.EscapeDataString(value);

    /// <summary>A time as KubernetesClient wrote it (RFC 3339 with microseconds, UTC): valid for Time and MicroTime fields.</summary>
    public static string FormatTime(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>An RFC 3339 time from the API server, or null when absent or unreadable.</summary>
    public static DateTimeOffset? ParseTime(JsonNode? node) =>
        node is JsonValue v && v.TryGetValue<string>(out var s) &&
        DateTimeOffset.TryParse(s, System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.AssumeUniversal | System.Globalization.DateTimeStyles.AdjustToUniversal, out var t)
            ? t
            : null;

    private static WatchEventType ParseType(string? type) => type switch
    {
        "ADDED" => WatchEventType.Added,
        "MODIFIED" => WatchEventType.Modified,
        "DELETED" => WatchEventType.Deleted,
        "ERROR" => WatchEventType.Error,
        "BOOKMARK" => WatchEventType.Bookmark,
        _ => throw new JsonException($"unknown watch event type \"{type}\""),
    };

    private async Task<HttpRequestMessage> RequestAsync(HttpMethod method, string path, string? query, JsonNode? body, string contentType, CancellationToken ct)
    {
        var request = new HttpRequestMessage(method, _base + path + query);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(Json));
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, contentType);
        }

        if (await TokenAsync(ct) is { } token)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        else if (_config.Username is { } user)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{_config.Password}")));
        }

        return request;
    }

    private async ValueTask<string?> TokenAsync(CancellationToken ct)
    {
        if (_config.TokenFile is null && _config.Exec is null)
        {
            return _config.Token;
        }

        var now = _time.GetUtcNow();
        if (_cachedToken is { } cached && now < cached.Until)
        {
            return cached.Token;
        }

        await _tokenGate.WaitAsync(ct);
        try
        {
            if (_cachedToken is { } again && now < again.Until)
            {
                return again.Token;
            }

            if (_config.TokenFile is { } file)
            {
                _cachedToken = ((await File.ReadAllTextAsync(file, ct)).Trim(), now + TokenFileRefresh);
            }
            else
            {
                var (token, expires) = await _config.Exec!.RunAsync(ct);
                _cachedToken = (token, expires ?? DateTimeOffset.MaxValue);
            }

            return _cachedToken.Value.Token;
        }
        finally
        {
            _tokenGate.Release();
        }
    }

    private bool ValidateServerCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (_config.SkipTlsVerify)
        {
            return true;
        }

        if (certificate is not X509Certificate2 cert)
        {
            return false;
        }

        if (_config.TlsServerName is { } name)
        {
            if (!cert.MatchesHostname(name))
            {
                return false;
            }

            errors &= ~SslPolicyErrors.RemoteCertificateNameMismatch;
        }

        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (errors != SslPolicyErrors.RemoteCertificateChainErrors || _config.CertificateAuthorities.Count == 0)
        {
            return false;
        }

        // The kubeconfig's CA is the only root the server's certificate has to chain to (a cluster's own CA).
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(_config.CertificateAuthorities);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
        {
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        return custom.Build(cert);
    }
}

/// <summary>The type of one watch event.</summary>
public enum WatchEventType
{
    Added,
    Modified,
    Deleted,
    Error,
    Bookmark,
}

/// <summary>The API server answered with a status other than 2xx.</summary>
public sealed class KubernetesApiException : Exception
{
    public KubernetesApiException(HttpMethod method, Uri requestUri, HttpStatusCode statusCode, string? reasonPhrase, string content)
        : base($"Operation returned an invalid status code '{statusCode}', response body {content}")
    {
        Method = method;
        RequestUri = requestUri;
        StatusCode = statusCode;
        ReasonPhrase = reasonPhrase;
        Content = content;
    }

    public KubernetesApiException()
    {
        Method = HttpMethod.Get;
        RequestUri = new Uri("http://localhost/");
        Content = "";
    }

    public KubernetesApiException(string message) : base(message)
    {
        Method = HttpMethod.Get;
        RequestUri = new Uri("http://localhost/");
        Content = "";
    }

    public KubernetesApiException(string message, Exception inner) : base(message, inner)
    {
        Method = HttpMethod.Get;
        RequestUri = new Uri("http://localhost/");
        Content = "";
    }

    public HttpMethod Method { get; }

    public Uri RequestUri { get; }

    public HttpStatusCode StatusCode { get; }

    public string? ReasonPhrase { get; }

    /// <summary>The response body (usually a Status object).</summary>
    public string Content { get; }
}

/// <summary>A watch stream carried an ERROR event: the Status object in it (410 Gone when the history is compacted).</summary>
public sealed class KubernetesStatusException : Exception
{
    public KubernetesStatusException(JsonObject status) : base((string?)status["message"] ?? "")
    {
        Status = status;
    }

    public KubernetesStatusException()
    {
        Status = [];
    }

    public KubernetesStatusException(string message) : base(message)
    {
        Status = [];
    }

    public KubernetesStatusException(string message, Exception inner) : base(message, inner)
    {
        Status = [];
    }

    public JsonObject Status { get; }

    /// <summary>The Status's HTTP code (0 when it has none).</summary>
    public int Code => Status["code"] is JsonValue v && v.TryGetValue<int>(out var code) ? code : 0;
}

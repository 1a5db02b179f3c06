using System.Globalization;
using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace Hypercore.Api.HttpJson;

/// <summary>
/// The <see cref="ServerCallContext"/> a gRPC handler sees when it is called over HTTP/JSON: request headers as
/// metadata, the request's cancellation, and response headers that start the HTTP response (Watch sends them once it
/// is subscribed). The HttpContext is in UserState under the key Grpc.AspNetCore's GetHttpContext() looks up.
/// </summary>
internal sealed class HttpJsonCallContext : ServerCallContext
{
    private const string HttpContextKey = "__HttpContext";

    private readonly HttpContext _http;
    private readonly string _method;
    private Metadata? _requestHeaders;
    private Dictionary<object, object>? _userState;

    public HttpJsonCallContext(HttpContext http, string method)
    {
        _http = http;
        _method = method;
    }

    public HttpContext HttpContext => _http;

    protected override string MethodCore => _method;

    protected override string HostCore => _http.Request.Host.Value ?? "";

    protected override string PeerCore => _http.Connection.RemoteIpAddress is { } ip
        ? string.Create(CultureInfo.InvariantCulture, $"{(ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "ipv6:[" + ip + "]" : "ipv4:" + ip)}:{_http.Connection.RemotePort}")
        : "unix:";

    protected override DateTime DeadlineCore => DateTime.MaxValue;

    protected override Metadata RequestHeadersCore => _requestHeaders ??= ToMetadata(_http.Request.Headers);

    protected override CancellationToken CancellationTokenCore => _http.RequestAborted;

    protected override Metadata ResponseTrailersCore { get; } = [];

    protected override Status StatusCore { get; set; }

    protected override WriteOptions? WriteOptionsCore { get; set; }

    protected override AuthContext AuthContextCore { get; } = new(null, new Dictionary<string, List<AuthProperty>>());

    protected override IDictionary<object, object> UserStateCore => _userState ??= new() { [HttpContextKey] = _http };

    protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) =>
        throw new NotSupportedException("context propagation is not available on an HTTP/JSON call");

    protected override async Task WriteResponseHeadersAsyncCore(Metadata responseHeaders)
    {
        var response = _http.Response;
        foreach (var entry in responseHeaders)
        {
            if (!entry.IsBinary)
            {
                response.Headers.Append(entry.Key, entry.Value);
            }
        }

        HttpJsonWriter.StartJson(response);
        await response.StartAsync(_http.RequestAborted);
    }

    /// <summary>HTTP headers as gRPC metadata: names gRPC accepts, binary ("-bin") ones left out.</summary>
    private static Metadata ToMetadata(IHeaderDictionary headers)
    {
        var metadata = new Metadata();
        foreach (var (name, values) in headers)
        {
            var key = name.ToLowerInvariant();
            if (key.Length == 0 || key[0] == ':' || key.EndsWith(Metadata.BinaryHeaderSuffix, StringComparison.Ordinal) || !ValidKey(key))
            {
                continue;
            }

            foreach (var value in values)
            {
                if (value is not null)
                {
                    metadata.Add(key, value);
                }
            }
        }

        return metadata;
    }

    private static bool ValidKey(string key)
    {
        foreach (var c in key)
        {
            if (!(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_' or '.'))
            {
                return false;
            }
        }

        return true;
    }
}

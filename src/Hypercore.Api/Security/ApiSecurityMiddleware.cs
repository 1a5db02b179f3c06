using System.Globalization;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace Hypercore.Api.Security;

/// <summary>
/// The first thing every request meets, on every endpoint and for every service (mapped now or later): Host header
/// allow-list, body size and media type, then authentication. It sets <see cref="CallerContext"/>; what the caller
/// may touch is decided where records are read and written (<see cref="AuthorizingMicroVmStore"/>). Only the gRPC
/// health service is open to anyone. Refusals are gRPC statuses for gRPC calls and JSON errors with the matching HTTP
/// status (the shape JSON transcoding uses) for HTTP calls; nothing behind this middleware runs for them.
/// </summary>
public sealed partial class ApiSecurityMiddleware
{
    /// <summary>Connection item naming the kind of listener a connection came in on (set by the host).</summary>
    public const string ListenerItem = "hypercore.listener";

    public const string UnixListener = "unix";

    private const string ClientCertificateItem = "hypercore.client-certificate";
    private const string HealthService = "/grpc.health.v1.Health";

    private readonly RequestDelegate _next;
    private readonly ApiSecurityOptions _options;
    private readonly ClientCertificates _certificates;
    private readonly HashSet<string> _hosts;
    private readonly ILogger<ApiSecurityMiddleware> _log;

    public ApiSecurityMiddleware(RequestDelegate next, IOptions<ApiSecurityOptions> options, TimeProvider time, ILogger<ApiSecurityMiddleware> log)
    {
        _next = next;
        _options = options.Value;
        _certificates = new ClientCertificates(_options.ClientCertificateAuthorities, time);
        _hosts = _options.AllowedHosts.Select(h => h.ToLowerInvariant()).ToHashSet(StringComparer.Ordinal);
        _log = log;
    }

    public async Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        var grpc = IsGrpc(request);
        if (request.Path.StartsWithSegments(HealthService, StringComparison.Ordinal))
        {
            await _next(context);
            return;
        }

        var items = context.Features.Get<IConnectionItemsFeature>()?.Items;
        var unix = items is not null && items.TryGetValue(ListenerItem, out var kind) && kind as string == UnixListener;
        if (!unix && !HostAllowed(request.Host))
        {
            LogRefused(request.Path, "host", request.Host.Value ?? "");
            await RefuseAsync(context, grpc, StatusCode.PermissionDenied,
                $"host \"{request.Host.Value}\" is not allowed (DNS rebinding protection); add it to the daemon's --allowed-hosts");
            return;
        }

        if (request.ContentLength > _options.MaxRequestBodyBytes)
        {
            await RefuseAsync(context, grpc, StatusCode.ResourceExhausted,
                $"request body of {request.ContentLength} bytes is larger than the daemon's --max-request-body ({_options.MaxRequestBodyBytes} bytes)",
                StatusCodes.Status413PayloadTooLarge);
            return;
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = _options.MaxRequestBodyBytes;
        }

        if (!grpc && HasBody(request) && !IsJson(request.ContentType))
        {
            // A browser may send a "simple" cross-site POST (form or text/plain) without asking first: refusing every
            // other media type keeps a web page from writing to the loopback API.
            await RefuseAsync(context, grpc, StatusCode.InvalidArgument,
                $"request body must be application/json, got \"{request.ContentType}\"", StatusCodes.Status415UnsupportedMediaType);
            return;
        }

        var caller = Authenticate(context, unix, out var problem);
        if (caller is null)
        {
            LogRefused(request.Path, "authentication", problem);
            await RefuseAsync(context, grpc, StatusCode.Unauthenticated, problem);
            return;
        }

        using (CallerContext.Enter(caller))
        {
            await _next(context);
        }
    }

    private Caller? Authenticate(HttpContext context, bool unix, out string problem)
    {
        problem = "";
        if (unix)
        {
            // The socket's mode (0660) and group decide who can connect at all: a peer is the local administrator.
            return FixedCallers.UnixSocket;
        }

        if (_certificates.Enabled && context.Connection.ClientCertificate is { } certificate)
        {
            var items = context.Features.Get<IConnectionItemsFeature>()?.Items;
            if (items?.TryGetValue(ClientCertificateItem, out var cached) == true && cached is CertificateResult result)
            {
                problem = result.Problem;
                return result.Name is null ? null : new Caller(result.Name, "client-certificate");
            }

            var name = _certificates.Validate(certificate, out problem);
            if (items is not null)
            {
                // Once per connection: the certificate cannot change on it.
                items[ClientCertificateItem] = new CertificateResult(name, problem);
            }

            return name is null ? null : new Caller(name, "client-certificate");
        }

        var header = context.Request.Headers.Authorization.ToString();
        if (header.Length > 0)
        {
            var token = TokenOf(header, out problem);
            if (token is null)
            {
                return null;
            }

            if (_options.Tokens.Find(token) is { } identity)
            {
                return new Caller(identity, "token");
            }

            problem = _options.Tokens.Count == 0
                ? "the daemon accepts no tokens (no --token-file)"
                : "the token is not in the daemon's --token-file";
            return null;
        }

        if (_options.RequiresCredentials)
        {
            problem = "no credentials: send \"authorization: Bearer TOKEN\" (or flintlock's \"authorization: basic base64(TOKEN)\")" +
                (_certificates.Enabled ? " or a client certificate issued by the daemon's --tls-client-ca" : "") +
                "; on the node itself, the Unix socket needs none";
            return null;
        }

        return FixedCallers.Anonymous;
    }

    /// <summary>The token of "Bearer TOKEN" or "basic base64(TOKEN)" (flintlock's form); schemes case-insensitive.</summary>
    internal static string? TokenOf(string header, out string problem)
    {
        problem = "";
        var space = header.IndexOf(' ', StringComparison.Ordinal);
        var scheme = space < 0 ? header : header[..space];
        var value = space < 0 ? "" : header[(space + 1)..].Trim();
        if (scheme.Equals("bearer", StringComparison.OrdinalIgnoreCase) && value.Length > 0)
        {
            return value;
        }

        if (scheme.Equals("basic", StringComparison.OrdinalIgnoreCase) && value.Length > 0)
        {
            try
            {
                return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(Convert.FromBase64String(value));
            }
            catch (Exception ex) when (ex is FormatException or ArgumentException)
            {
                problem = "authorization: basic needs base64(TOKEN)";
                return null;
            }
        }

        problem = $"authorization scheme \"{scheme}\" is not supported: use \"Bearer TOKEN\" or \"basic base64(TOKEN)\"";
        return null;
    }

    private bool HostAllowed(HostString host)
    {
        if (_hosts.Contains("*"))
        {
            return true;
        }

        if (!host.HasValue)
        {
            return false;
        }

        var name = host.Host.ToLowerInvariant();
        return _hosts.Contains(name) || MatchesWildcard(name);
    }

    /// <summary>"*.example.com" allows any name under example.com (a loop, not LINQ: its closure over the name was made
    /// on every request, issue 15, alloc7).</summary>
    private bool MatchesWildcard(string name)
    {
        foreach (var h in _hosts)
        {
            if (h.StartsWith("*.", StringComparison.Ordinal) && name.AsSpan().EndsWith(h.AsSpan(1), StringComparison.Ordinal) && name.Length > h.Length - 1)
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsGrpc(HttpRequest request) =>
        request.ContentType is { } type && type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase);

    private static bool HasBody(HttpRequest request) =>
        request.ContentLength > 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count > 0);

    private static bool IsJson(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var media) &&
        media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase);

    private static async Task RefuseAsync(HttpContext context, bool grpc, StatusCode code, string message, int? httpStatus = null)
    {
        var response = context.Response;
        if (grpc)
        {
            // A trailers-only gRPC response: HTTP 200 with grpc-status in the only header block.
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/grpc";
            response.Headers["grpc-status"] = ((int)code).ToString(CultureInfo.InvariantCulture);
            response.Headers["grpc-message"] = PercentEncode(message);
            return;
        }

        response.StatusCode = httpStatus ?? code switch
        {
            StatusCode.Unauthenticated => StatusCodes.Status401Unauthorized,
            StatusCode.PermissionDenied => StatusCodes.Status403Forbidden,
            _ => StatusCodes.Status400BadRequest,
        };
        if (code == StatusCode.Unauthenticated)
        {
            response.Headers.WWWAuthenticate = "Bearer";
        }

        response.ContentType = "application/json";
        await response.WriteAsync(JsonSerializer.Serialize(new ErrorBody((int)code, message, []), ErrorBodyJson), context.RequestAborted);
    }

    /// <summary>grpc-message is percent-encoded UTF-8 (gRPC over HTTP/2 spec).</summary>
    private static string PercentEncode(string message)
    {
        var builder = new StringBuilder();
        foreach (var b in Encoding.UTF8.GetBytes(message))
        {
            if (b is >= 0x20 and <= 0x7E && b != (byte)'%')
            {
                builder.Append((char)b);
            }
            else
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return builder.ToString();
    }

    // Source-generated metadata (no reflection: trimmable, Native-AOT-safe), with the relaxed encoder it always used.
    private static readonly System.Text.Json.Serialization.Metadata.JsonTypeInfo<ErrorBody> ErrorBodyJson =
        (System.Text.Json.Serialization.Metadata.JsonTypeInfo<ErrorBody>)new JsonSerializerOptions
        {
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            TypeInfoResolver = SecurityJsonContext.Default,
        }.GetTypeInfo(typeof(ErrorBody));

    private sealed record CertificateResult(string? Name, string Problem);

    /// <summary>
    /// The callers whose identity is fixed, made once instead of per request (issue 15, alloc7; a Caller is immutable).
    /// A class of their own: as static fields of the middleware they would run its static constructor, and with it the
    /// error body's JSON metadata, at the first request instead of at the first refusal.
    /// </summary>
    private static class FixedCallers
    {
        public static readonly Caller UnixSocket = new(Caller.UnixSocketIdentity, "unix-socket");
        public static readonly Caller Anonymous = new(Caller.AnonymousIdentity, "none");
    }

    internal sealed record ErrorBody(
        [property: System.Text.Json.Serialization.JsonPropertyName("code")] int Code,
        [property: System.Text.Json.Serialization.JsonPropertyName("message")] string Message,
        [property: System.Text.Json.Serialization.JsonPropertyName("details")] string[] Details);

    [LoggerMessage(2110, LogLevel.Warning, "refused {Path}: {Check}: {Problem}")]
    private partial void LogRefused(string path, string check, string problem);
}

[System.Text.Json.Serialization.JsonSerializable(typeof(ApiSecurityMiddleware.ErrorBody))]
internal sealed partial class SecurityJsonContext : System.Text.Json.Serialization.JsonSerializerContext;

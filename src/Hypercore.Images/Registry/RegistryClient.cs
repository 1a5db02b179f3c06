using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Hypercore.Images.References;

namespace Hypercore.Images.Registry;

/// <summary>A blob body being streamed; <see cref="Resumed"/> when the registry honoured the Range offset.</summary>
public sealed record BlobStream(Stream Content, bool Resumed, long? Length) : IDisposable
{
    public void Dispose() => Content.Dispose();
}

/// <summary>
/// OCI distribution API client: manifests (lists/indexes resolved to linux/amd64) and blobs, with anonymous,
/// bearer-token and basic auth. HTTPS only (system CAs plus <see cref="RegistryOptions.CaFile"/>) unless the
/// registry is listed in <see cref="RegistryOptions.InsecureRegistries"/>.
/// </summary>
public sealed class RegistryClient : IDisposable
{
    private static readonly string AcceptManifests = string.Join(", ",
        MediaTypes.OciManifest, MediaTypes.OciIndex, MediaTypes.DockerManifest, MediaTypes.DockerManifestList);

    private readonly RegistryOptions _options;
    private readonly RegistryCredentials _credentials;
    private readonly HttpClient _http;
    private readonly X509Certificate2Collection _extraRoots = new();
    // Authorization header per registry/repository, so a token is fetched once, not per request.
    private readonly ConcurrentDictionary<string, AuthenticationHeaderValue> _auth = new(StringComparer.Ordinal);

    /// <param name="outerHandler">Optional handler chained in front of the transport (tests count requests with it).</param>
    public RegistryClient(RegistryOptions options, DelegatingHandler? outerHandler = null)
    {
        _options = options;
        _credentials = RegistryCredentials.Load(options.CredentialsFile);
        if (!string.IsNullOrEmpty(options.CaFile))
        {
            _extraRoots.ImportFromPemFile(options.CaFile);
            if (_extraRoots.Count == 0) throw new FormatException($"CA file {options.CaFile} holds no PEM certificate");
        }
        var transport = new SocketsHttpHandler
        {
            ConnectTimeout = options.RequestTimeout,
            AllowAutoRedirect = true,
            AutomaticDecompression = DecompressionMethods.None,
            SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = ValidateServerCertificate },
        };
        HttpMessageHandler handler = transport;
        if (outerHandler is not null)
        {
            outerHandler.InnerHandler = transport;
            handler = outerHandler;
        }
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    public void Dispose() => _http.Dispose();

    /// <summary>Fetches the manifest, resolving a list/index to its linux/amd64 entry, and verifies digests.</summary>
    public async Task<ImageManifest> GetManifestAsync(ImageReference reference, CancellationToken cancellationToken)
    {
        var (mediaType, raw, digest) = await FetchManifestAsync(reference, reference.ManifestReference, cancellationToken);
        if (MediaTypes.IsIndex(mediaType))
        {
            var chosen = ChooseLinuxAmd64(reference, raw);
            (mediaType, raw, digest) = await FetchManifestAsync(reference, chosen, cancellationToken);
        }
        if (!MediaTypes.IsManifest(mediaType))
            throw new ImagePullException(ImagePullErrorKind.Unsupported, reference.ToString(),
                $"{reference}: manifest media type '{mediaType}' is not an OCI or Docker v2 image manifest");
        return ParseManifest(reference, mediaType, raw, digest);
    }

    /// <summary>Opens a blob from <paramref name="offset"/> (a Range request; the registry may answer with the whole blob).</summary>
    public async Task<BlobStream> OpenBlobAsync(ImageReference reference, string digest, long offset, CancellationToken cancellationToken)
    {
        var response = await SendAsync(reference, () =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, Url(reference, $"blobs/{digest}"));
            if (offset > 0) request.Headers.Range = new RangeHeaderValue(offset, null);
            return request;
        }, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            using (response) throw await ErrorFromAsync(reference, response, $"blob {digest}", cancellationToken);
        }
        var resumed = response.StatusCode == HttpStatusCode.PartialContent;
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        return new BlobStream(new ResponseStream(stream, response), resumed, response.Content.Headers.ContentLength);
    }

    private async Task<(string MediaType, byte[] Raw, string Digest)> FetchManifestAsync(ImageReference reference, string what, CancellationToken ct)
    {
        using var response = await SendAsync(reference, () =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, Url(reference, $"manifests/{what}"));
            request.Headers.TryAddWithoutValidation("Accept", AcceptManifests);
            return request;
        }, HttpCompletionOption.ResponseContentRead, ct);
        if (!response.IsSuccessStatusCode) throw await ErrorFromAsync(reference, response, $"manifest {what}", ct);
        var raw = await response.Content.ReadAsByteArrayAsync(ct);
        var digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(raw));
        if (what.StartsWith("sha256:", StringComparison.Ordinal) && what != digest)
            throw new ImagePullException(ImagePullErrorKind.DigestMismatch, reference.ToString(),
                $"{reference}: manifest {what} arrived with digest {digest}");
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        if (string.IsNullOrEmpty(mediaType) || mediaType == "application/json")
        {
            using var doc = JsonDocument.Parse(raw);
            mediaType = doc.RootElement.TryGetProperty("mediaType", out var mt) ? mt.GetString() ?? "" : "";
            if (mediaType.Length == 0) mediaType = doc.RootElement.TryGetProperty("manifests", out _) ? MediaTypes.OciIndex : MediaTypes.OciManifest;
        }
        return (mediaType, raw, digest);
    }

    private static string ChooseLinuxAmd64(ImageReference reference, byte[] raw)
    {
        using var doc = JsonDocument.Parse(raw);
        var seen = new List<string>();
        foreach (var m in doc.RootElement.GetProperty("manifests").EnumerateArray())
        {
            if (!m.TryGetProperty("platform", out var p)) continue;
            var os = p.TryGetProperty("os", out var o) ? o.GetString() : null;
            var arch = p.TryGetProperty("architecture", out var a) ? a.GetString() : null;
            seen.Add($"{os}/{arch}");
            if (os == "linux" && arch == "amd64") return m.GetProperty("digest").GetString()!;
        }
        throw new ImagePullException(ImagePullErrorKind.Unsupported, reference.ToString(),
            $"{reference}: the manifest list has no linux/amd64 image (it has: {(seen.Count == 0 ? "none" : string.Join(", ", seen))})");
    }

    internal static ImageManifest ParseManifest(ImageReference reference, string mediaType, byte[] raw, string digest)
    {
        try
        {
            using var doc = JsonDocument.Parse(raw);
            var root = doc.RootElement;
            var config = ReadDescriptor(root.GetProperty("config"));
            var layers = root.GetProperty("layers").EnumerateArray().Select(ReadDescriptor).ToList();
            return new ImageManifest(digest, mediaType, config, layers, raw);
        }
        catch (Exception e) when (e is KeyNotFoundException or JsonException or InvalidOperationException or FormatException)
        {
            throw new ImagePullException(ImagePullErrorKind.Unsupported, reference.ToString(), $"{reference}: malformed manifest: {e.Message}", null, e);
        }
    }

    private static Descriptor ReadDescriptor(JsonElement e)
    {
        var digest = e.GetProperty("digest").GetString() ?? throw new FormatException("descriptor without digest");
        if (!digest.StartsWith("sha256:", StringComparison.Ordinal) || digest.Length != 71 || !digest[7..].All(Uri.IsHexDigit))
            throw new FormatException($"descriptor digest '{digest}' is not sha256:<64 hex digits>");
        return new Descriptor(e.GetProperty("mediaType").GetString() ?? "", digest.ToLowerInvariant(), e.GetProperty("size").GetInt64());
    }

    private Uri Url(ImageReference reference, string path)
    {
        var scheme = IsInsecure(reference.Registry) ? "http" : "https";
        return new Uri($"{scheme}://{reference.ApiHost}/v2/{reference.Repository}/{path}");
    }

    private bool IsInsecure(string registry) => _options.InsecureRegistries.Any(r => string.Equals(r, registry, StringComparison.OrdinalIgnoreCase));

    private async Task<HttpResponseMessage> SendAsync(ImageReference reference, Func<HttpRequestMessage> create, HttpCompletionOption completion, CancellationToken ct)
    {
        var key = $"{reference.Registry}/{reference.Repository}";
        HttpResponseMessage response;
        using (var request = create())
        {
            if (_auth.TryGetValue(key, out var cached)) request.Headers.Authorization = cached;
            response = await SendRawAsync(reference, request, completion, ct);
        }
        if (response.StatusCode != HttpStatusCode.Unauthorized) return response;

        var challenge = response.Headers.WwwAuthenticate.FirstOrDefault();
        AuthenticationHeaderValue authorization;
        if (challenge is not null && challenge.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
        {
            authorization = new AuthenticationHeaderValue("Bearer", await FetchTokenAsync(reference, challenge.Parameter ?? "", ct));
        }
        else if (challenge is not null && challenge.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase)
                 && _credentials.TryGet(reference.Registry, out var user, out var password))
        {
            authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));
        }
        else
        {
            using (response) throw await ErrorFromAsync(reference, response, "access", ct);
        }
        response.Dispose();
        _auth[key] = authorization;
        using var retry = create();
        retry.Headers.Authorization = authorization;
        return await SendRawAsync(reference, retry, completion, ct);
    }

    private async Task<string> FetchTokenAsync(ImageReference reference, string parameters, CancellationToken ct)
    {
        var p = ParseChallenge(parameters);
        if (!p.TryGetValue("realm", out var realm) || !Uri.TryCreate(realm, UriKind.Absolute, out var realmUri))
            throw new ImagePullException(ImagePullErrorKind.Unauthorized, reference.ToString(),
                $"{reference.Registry} asked for a bearer token without a usable realm ('{parameters}')");
        if (realmUri.Scheme != Uri.UriSchemeHttps && !IsInsecure(reference.Registry) && !IsInsecure(realmUri.Authority))
            throw new ImagePullException(ImagePullErrorKind.TlsFailure, reference.ToString(),
                $"{reference.Registry}'s token realm {realm} is plain HTTP; list '{realmUri.Authority}' in InsecureRegistries to allow it");
        var query = new List<string>();
        if (p.TryGetValue("service", out var service)) query.Add("service=" + Uri.EscapeDataString(service));
        query.Add("scope=" + Uri.EscapeDataString(p.TryGetValue("scope", out var scope) ? scope : $"repository:{reference.Repository}:pull"));
        var builder = new UriBuilder(realmUri) { Query = string.Join("&", query) };
        using var request = new HttpRequestMessage(HttpMethod.Get, builder.Uri);
        if (_credentials.TryGet(reference.Registry, out var user, out var password))
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));
        using var response = await SendRawAsync(reference, request, HttpCompletionOption.ResponseContentRead, ct);
        if (!response.IsSuccessStatusCode)
        {
            var body = await response.Content.ReadAsStringAsync(ct);
            throw new ImagePullException(ImagePullErrorKind.Unauthorized, reference.ToString(),
                $"{reference}: token endpoint {realmUri.GetLeftPart(UriPartial.Path)} answered {(int)response.StatusCode}: {Trim(body)}", Trim(body));
        }
        using var doc = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(ct));
        var token = (doc.RootElement.TryGetProperty("token", out var t) ? t.GetString() : null)
                    ?? (doc.RootElement.TryGetProperty("access_token", out var at) ? at.GetString() : null);
        return token is { Length: > 0 } ? token : throw new ImagePullException(ImagePullErrorKind.Unauthorized, reference.ToString(),
            $"{reference}: token endpoint {realmUri.GetLeftPart(UriPartial.Path)} returned no token");
    }

    internal static Dictionary<string, string> ParseChallenge(string parameters)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var i = 0;
        while (i < parameters.Length)
        {
            while (i < parameters.Length && (parameters[i] == ',' || parameters[i] == ' ')) i++;
            var eq = parameters.IndexOf('=', i);
            if (eq < 0) break;
            var name = parameters[i..eq].Trim();
            i = eq + 1;
            string value;
            if (i < parameters.Length && parameters[i] == '"')
            {
                var end = parameters.IndexOf('"', i + 1);
                if (end < 0) end = parameters.Length;
                value = parameters[(i + 1)..end];
                i = end + 1;
            }
            else
            {
                var end = parameters.IndexOf(',', i);
                if (end < 0) end = parameters.Length;
                value = parameters[i..end].Trim();
                i = end;
            }
            result[name] = value;
        }
        return result;
    }

    private async Task<HttpResponseMessage> SendRawAsync(ImageReference reference, HttpRequestMessage request, HttpCompletionOption completion, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.RequestTimeout);
        try
        {
            return await _http.SendAsync(request, completion, timeout.Token);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new ImagePullException(ImagePullErrorKind.RegistryUnreachable, reference.ToString(),
                $"{reference.Registry} did not answer {request.RequestUri?.GetLeftPart(UriPartial.Path)} within {_options.RequestTimeout.TotalSeconds:0}s", null, e);
        }
        catch (HttpRequestException e) when (HasInner<AuthenticationException>(e) || e.HttpRequestError == HttpRequestError.SecureConnectionError)
        {
            throw new ImagePullException(ImagePullErrorKind.TlsFailure, reference.ToString(),
                $"TLS to {request.RequestUri?.Authority} failed ({Innermost(e).Message}). If it uses a private CA, set the registry CA file; " +
                $"if it serves plain HTTP on purpose, list '{reference.Registry}' in the insecure registries", null, e);
        }
        catch (HttpRequestException e)
        {
            throw new ImagePullException(ImagePullErrorKind.RegistryUnreachable, reference.ToString(),
                $"{request.RequestUri?.Authority} is unreachable: {Innermost(e).Message}" +
                (HasInner<SocketException>(e) ? "" : $" ({e.HttpRequestError})"), null, e);
        }
    }

    private static async Task<ImagePullException> ErrorFromAsync(ImageReference reference, HttpResponseMessage response, string what, CancellationToken ct)
    {
        var body = "";
        try { body = await response.Content.ReadAsStringAsync(ct); } catch (HttpRequestException) { }
        var codes = new List<string>();
        var messages = new List<string>();
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.TryGetProperty("errors", out var errors))
                foreach (var e in errors.EnumerateArray())
                {
                    var code = e.TryGetProperty("code", out var c) ? c.GetString() ?? "" : "";
                    codes.Add(code);
                    messages.Add(e.TryGetProperty("message", out var m) ? $"{code}: {m.GetString()}" : code);
                }
        }
        catch (JsonException) { }
        var registryMessage = messages.Count > 0 ? string.Join("; ", messages) : (body.Length > 0 ? Trim(body) : null);
        var status = (int)response.StatusCode;
        var kind = response.StatusCode switch
        {
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => ImagePullErrorKind.Unauthorized,
            _ when codes.Contains("MANIFEST_UNKNOWN") || codes.Contains("NAME_UNKNOWN") => ImagePullErrorKind.ManifestUnknown,
            HttpStatusCode.NotFound when what.StartsWith("manifest", StringComparison.Ordinal) => ImagePullErrorKind.ManifestUnknown,
            _ => ImagePullErrorKind.RegistryError,
        };
        var text = kind switch
        {
            ImagePullErrorKind.ManifestUnknown => $"{reference}: the registry does not know this image ({status}",
            ImagePullErrorKind.Unauthorized => $"{reference}: the registry refused {what} ({status}",
            _ => $"{reference}: {what} failed ({status}",
        };
        text += registryMessage is null ? ")" : $" {registryMessage})";
        if (kind == ImagePullErrorKind.Unauthorized) text += "; check the node's registry credentials file";
        return new ImagePullException(kind, reference.ToString(), text, registryMessage);
    }

    private bool ValidateServerCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None) return true;
        // Only chain trust can be fixed by the configured CA; a name mismatch or no certificate never is.
        if (errors != SslPolicyErrors.RemoteCertificateChainErrors || _extraRoots.Count == 0 || certificate is null) return false;
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(_extraRoots);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
            foreach (var element in chain.ChainElements) custom.ChainPolicy.ExtraStore.Add(element.Certificate);
        return custom.Build(certificate as X509Certificate2 ?? new X509Certificate2(certificate));
    }

    private static bool HasInner<T>(Exception e) where T : Exception
    {
        for (Exception? x = e; x is not null; x = x.InnerException) if (x is T) return true;
        return false;
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e;
    }

    private static string Trim(string s) => s.Length > 500 ? s[..500] + "…" : s.Trim();

    /// <summary>Keeps the response alive as long as its body stream.</summary>
    private sealed class ResponseStream(Stream inner, HttpResponseMessage response) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing)
        {
            if (disposing) { inner.Dispose(); response.Dispose(); }
            base.Dispose(disposing);
        }
    }
}

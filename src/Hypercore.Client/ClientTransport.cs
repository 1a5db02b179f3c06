using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Hypercore.Client;

/// <summary>The HTTP handler under the gRPC channel: Unix socket or TCP, TLS trust and client certificate, token header.</summary>
internal static class ClientTransport
{
    public static HttpMessageHandler Create(string hostOrUrl, HypercoreClientOptions options)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = options.ConnectTimeout,
            EnableMultipleHttp2Connections = true,
            // Watches and followed logs stay open for a long time; pings keep idle streams from being dropped.
            KeepAlivePingDelay = TimeSpan.FromSeconds(60),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(30),
        };

        if (HypercoreAddress.UnixSocketPath(hostOrUrl) is { } socket)
        {
            handler.ConnectCallback = async (_, ct) =>
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), ct);
                    return new NetworkStream(s, ownsSocket: true);
                }
                catch
                {
                    s.Dispose();
                    throw;
                }
            };
        }

        var ssl = new SslClientAuthenticationOptions();
        if (!string.IsNullOrWhiteSpace(options.TlsCaFile))
        {
            var authorities = Load(options.TlsCaFile, "TLS CA");
            ssl.RemoteCertificateValidationCallback = (_, certificate, _, errors) => Trusted(certificate, errors, authorities);
        }

        if (!string.IsNullOrWhiteSpace(options.TlsCertFile))
        {
            ssl.ClientCertificates = [LoadClientCertificate(options.TlsCertFile, options.TlsKeyFile!)];
        }

        handler.SslOptions = ssl;
        var token = options.Token is { Length: > 0 } given ? given : ReadToken(options.TokenFile);
        return token is null ? handler : new TokenHandler(token) { InnerHandler = handler };
    }

    /// <summary>The first word of the first line that is not blank or a comment.</summary>
    internal static string? ReadToken(string? path)
    {
        if (string.IsNullOrWhiteSpace(path))
        {
            return null;
        }

        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"token file {path}: {ex.Message}", ex);
        }

        return lines.Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)[0])
            .FirstOrDefault() ?? throw new ArgumentException($"token file {path} holds no token");
    }

    /// <summary>The daemon's certificate must chain to one of the given CAs and match the host name.</summary>
    private static bool Trusted(X509Certificate? certificate, SslPolicyErrors errors, X509Certificate2Collection authorities)
    {
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch) || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = new X509Certificate2(certificate);
        return chain.Build(leaf);
    }

    private static X509Certificate2Collection Load(string path, string what)
    {
        try
        {
            var certificates = new X509Certificate2Collection();
            certificates.ImportFromPemFile(path);
            return certificates.Count > 0 ? certificates : throw new ArgumentException($"{what} {path} holds no PEM certificate");
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{what} {path}: {ex.Message}", ex);
        }
    }

    private static X509Certificate2 LoadClientCertificate(string cert, string key)
    {
        try
        {
            using var pem = X509Certificate2.CreateFromPemFile(cert, key);

            // SslStream wants a key it can use for the handshake: a PEM-loaded key is ephemeral.
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"client certificate {cert} (key {key}): {ex.Message}", ex);
        }
    }

    private sealed class TokenHandler(string token) : DelegatingHandler
    {
        private readonly AuthenticationHeaderValue _header = new("Bearer", token);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Authorization = _header;
            return base.SendAsync(request, cancellationToken);
        }
    }
}

using System.Security.Cryptography.X509Certificates;

namespace Hypercore.Api.Security;

/// <summary>
/// How the API authenticates and authorizes callers; filled in by the host from its settings (the daemon's
/// --token-file, --tls-client-ca, [[identities]], --allowed-hosts, --max-request-body).
/// </summary>
public sealed class ApiSecurityOptions
{
    /// <summary>Tokens accepted as <c>authorization: Bearer TOKEN</c> or flintlock's <c>authorization: basic base64(TOKEN)</c>.</summary>
    public TokenFile Tokens { get; set; } = TokenFile.Empty;

    /// <summary>CAs whose client certificates are accepted; empty: client certificates are not asked for.</summary>
    public X509Certificate2Collection ClientCertificateAuthorities { get; set; } = [];

    /// <summary>Per-identity namespaces and write permission; empty: every authenticated caller is an administrator.</summary>
    public IReadOnlyList<IdentityGrant> Identities { get; set; } = [];

    /// <summary>
    /// Host header values (without port) accepted on TCP: a request naming another host is refused, which defeats DNS
    /// rebinding (a web page whose name resolves to 127.0.0.1). "*.example.com" accepts its subdomains, "*" any.
    /// </summary>
    public IReadOnlyList<string> AllowedHosts { get; set; } = ["localhost", "127.0.0.1", "[::1]", "::1"];

    /// <summary>Largest request body (bytes) on every endpoint, gRPC messages included. Default 1 MiB.</summary>
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Whether a TCP caller must present credentials: true as soon as tokens or client CAs are configured.</summary>
    public bool RequiresCredentials => Tokens.Count > 0 || ClientCertificateAuthorities.Count > 0;
}

using System.Globalization;

namespace Hypercore.Daemon.Configuration;

/// <summary>
/// Transport and identity settings (see docs/security.md): the Unix socket, TLS, client certificates, tokens,
/// per-identity grants, the Host allow-list and the request size limit.
/// </summary>
public sealed partial class DaemonOptions
{
    /// <summary>Unix socket served alongside the TCP endpoints (gRPC, HTTP/2); empty: &lt;state-dir&gt;/vistarad.sock; "none": no socket.</summary>
    public string Socket { get; set; } = "";

    /// <summary>Group that may connect to the Unix socket(s) (mode 0660); name or number. Default: the daemon's group.</summary>
    public string? SocketGroup { get; set; }

    /// <summary>PEM certificate (with its chain) served on every TCP endpoint; reloaded when the file changes.</summary>
    public string? TlsCert { get; set; }

    /// <summary>PEM private key of <see cref="TlsCert"/>.</summary>
    public string? TlsKey { get; set; }

    /// <summary>PEM CA certificate(s): clients presenting a certificate issued by one are authenticated as its CN.</summary>
    public string? TlsClientCa { get; set; }

    /// <summary>File of "TOKEN IDENTITY" lines: bearer (or flintlock basic) tokens.</summary>
    public string? TokenFile { get; set; }

    /// <summary>Allow a non-loopback endpoint without TLS and credentials (a warning is logged at every start).</summary>
    public bool Insecure { get; set; }

    /// <summary>Serve gRPC reflection (behind the same authentication as the API). Default true.</summary>
    public bool Reflection { get; set; } = true;

    /// <summary>Extra Host header values accepted on TCP (comma separated), besides localhost and the bound addresses; "*" any.</summary>
    public string? AllowedHosts { get; set; }

    /// <summary>Largest request body in bytes, gRPC messages included. Default 1 MiB.</summary>
    public long MaxRequestBody { get; set; } = 1024 * 1024;

    /// <summary>Per-identity grants ([[identities]] in the TOML file).</summary>
    public List<IdentityOptions> Identities { get; set; } = [];

    /// <summary>The Unix socket path, or null when it is turned off.</summary>
    public string? SocketPath => Socket switch
    {
        "none" => null,
        "" => Path.Combine(StateDirectory, "vistarad.sock"),
        var path => path,
    };

    public string LockPath => Path.Combine(StateDirectory, "vistarad.lock");

    public bool TlsEnabled => !string.IsNullOrWhiteSpace(TlsCert);
}

/// <summary>One <c>[[identities]]</c> table: <c>name = "ci"</c>, <c>namespaces = ["ci"]</c>, <c>write = true</c>.</summary>
public sealed class IdentityOptions
{
    public string Name { get; set; } = "";

    public List<string> Namespaces { get; set; } = [];

    public bool Write { get; set; }
}

/// <summary>The transport and identity settings: flags and TOML keys of the same name.</summary>
public static class SecuritySettings
{
    public static readonly DaemonSetting Socket = new("socket", "Daemon:Socket",
        "Unix socket for gRPC on this node (mode 0660); default <state-dir>/vistarad.sock; none: no socket", "path|none");
    public static readonly DaemonSetting SocketGroup = new("socket-group", "Daemon:SocketGroup",
        "group allowed to connect to the Unix socket; default the daemon's group", "group");
    public static readonly DaemonSetting TlsCert = new("tls-cert", "Daemon:TlsCert",
        "PEM certificate (and chain) for TLS on every TCP endpoint; reloaded when it changes", "file.pem");
    public static readonly DaemonSetting TlsKey = new("tls-key", "Daemon:TlsKey", "PEM private key of --tls-cert", "file.pem");
    public static readonly DaemonSetting TlsClientCa = new("tls-client-ca", "Daemon:TlsClientCa",
        "PEM CA(s) for client certificates; the certificate's CN (else DNS SAN) is the caller's identity", "file.pem");
    public static readonly DaemonSetting TokenFile = new("token-file", "Daemon:TokenFile",
        "file of \"TOKEN IDENTITY\" lines; callers send authorization: Bearer TOKEN (or basic base64(TOKEN))", "file");
    public static readonly DaemonSetting Insecure = new("insecure", "Daemon:Insecure",
        "allow a non-loopback endpoint without TLS and credentials (logged as a warning at every start)", "", IsSwitch: true);
    public static readonly DaemonSetting Reflection = new("reflection", "Daemon:Reflection",
        "serve gRPC reflection (authenticated like the API); default true", "true|false");
    public static readonly DaemonSetting AllowedHosts = new("allowed-hosts", "Daemon:AllowedHosts",
        "extra Host header names accepted on TCP (comma separated; * any); default localhost and the bound addresses", "names");
    public static readonly DaemonSetting MaxRequestBody = new("max-request-body", "Daemon:MaxRequestBody",
        "largest request body in bytes; default 1048576", "bytes");

    /// <summary>The TOML table array of per-identity grants; no flag.</summary>
    public const string IdentitiesKey = "identities";

    public static readonly IReadOnlyList<DaemonSetting> All =
        [Socket, SocketGroup, TlsCert, TlsKey, TlsClientCa, TokenFile, Insecure, Reflection, AllowedHosts, MaxRequestBody];

    internal static string Format(long value) => value.ToString(CultureInfo.InvariantCulture);
}

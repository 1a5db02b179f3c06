namespace Hypercore.Client;

/// <summary>Turns what a person types for a daemon ("localhost:9090", "10.0.0.5", "http://host:9090") into a gRPC address.</summary>
public static class HypercoreAddress
{
    public const int DefaultPort = 9090;

    public const string DefaultHost = "localhost:9090";

    /// <summary>The node-local socket vistarad serves by default (its state directory's vistarad.sock).</summary>
    public const string DefaultSocket = "/var/lib/hypercore/vistarad.sock";

    public const string UnixScheme = "unix://";

    /// <summary>
    /// What to connect to when nothing is given: the node's Unix socket when it exists and this process may connect to
    /// it (mode 0660: root or the socket's group), else <see cref="DefaultHost"/>.
    /// </summary>
    public static string Default(string socket = DefaultSocket)
    {
        if (!File.Exists(socket))
        {
            return DefaultHost;
        }

        try
        {
            using var probe = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            probe.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(socket));
            return UnixScheme + socket;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return DefaultHost; // no permission, or no daemon behind a stale socket
        }
    }

    /// <summary>The socket path of a unix:///path address, else null.</summary>
    public static string? UnixSocketPath(string hostOrUrl)
    {
        var text = hostOrUrl.Trim();
        if (!text.StartsWith(UnixScheme, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var path = text[UnixScheme.Length..];
        return Path.IsPathFullyQualified(path)
            ? path
            : throw new FormatException($"\"{hostOrUrl}\": a Unix socket address is unix:///absolute/path");
    }

    /// <summary>
    /// "host", "host:port", "[::1]:port", "http://host:port" or "https://host:port". Without a scheme the
    /// daemon is assumed to speak HTTP/2 without TLS (its default gRPC endpoint); without a port, 9090.
    /// </summary>
    /// <exception cref="FormatException">the text is not a host or an http(s) URL.</exception>
    public static Uri Parse(string hostOrUrl) => Parse(hostOrUrl, tls: false);

    /// <summary>As <see cref="Parse(string)"/>; with <paramref name="tls"/> an address without a scheme is https.</summary>
    public static Uri Parse(string hostOrUrl, bool tls)
    {
        ArgumentNullException.ThrowIfNull(hostOrUrl);
        var text = hostOrUrl.Trim();
        if (text.Length == 0)
        {
            throw new FormatException("the daemon address is empty");
        }

        if (UnixSocketPath(text) is not null)
        {
            // The channel needs an http URL; the connection itself goes to the socket (HypercoreClient).
            return new Uri("http://localhost");
        }

        if (text.Contains("://", StringComparison.Ordinal))
        {
            if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
            {
                throw new FormatException($"\"{hostOrUrl}\" is not an http:// or https:// address");
            }

            if (url.AbsolutePath is not ("/" or ""))
            {
                throw new FormatException($"\"{hostOrUrl}\" must not have a path: gRPC services live at the root");
            }

            return url;
        }

        if (!Uri.TryCreate("http://" + text, UriKind.Absolute, out var plain) || plain.AbsolutePath != "/" ||
            plain.Query.Length > 0 || plain.UserInfo.Length > 0 || plain.Host.Length == 0)
        {
            throw new FormatException($"\"{hostOrUrl}\" is not a host, host:port or http(s):// URL");
        }

        // Uri fills in port 80 for "http://host"; the daemon's gRPC default is 9090.
        var hasPort = text.EndsWith(":" + plain.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        return new UriBuilder(tls ? Uri.UriSchemeHttps : Uri.UriSchemeHttp, plain.Host, hasPort ? plain.Port : DefaultPort).Uri;
    }
}

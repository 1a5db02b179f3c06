namespace Hypercore.Client;

/// <summary>Turns what a person types for a daemon ("localhost:9090", "10.0.0.5", "http://host:9090") into a gRPC address.</summary>
public static class HypercoreAddress
{
    public const int DefaultPort = 9090;

    public const string DefaultHost = "localhost:9090";

    /// <summary>
    /// "host", "host:port", "[::1]:port", "http://host:port" or "https://host:port". Without a scheme the
    /// daemon is assumed to speak HTTP/2 without TLS (its default gRPC endpoint); without a port, 9090.
    /// </summary>
    /// <exception cref="FormatException">the text is not a host or an http(s) URL.</exception>
    public static Uri Parse(string hostOrUrl)
    {
        ArgumentNullException.ThrowIfNull(hostOrUrl);
        var text = hostOrUrl.Trim();
        if (text.Length == 0)
        {
            throw new FormatException("the daemon address is empty");
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
        return new UriBuilder(Uri.UriSchemeHttp, plain.Host, hasPort ? plain.Port : DefaultPort).Uri;
    }
}

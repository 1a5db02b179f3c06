using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using Hypercore.Drivers.Vmm;

namespace Hypercore.Daemon.Configuration;

/// <summary>
/// A listen address from a flag or the config file: <c>host:port</c>, optionally with an <c>http://</c> or
/// <c>https://</c> prefix (https needs --tls-cert), or <c>unix:///absolute/path</c> for a Unix socket.
/// host is <c>localhost</c>, <c>*</c> (every address), or an IP address (IPv6 in brackets). Port 0 picks a free port.
/// </summary>
public sealed record ListenEndpoint(string Host, IPAddress? Address, int Port)
{
    public const string UnixScheme = "unix://";

    /// <summary>The socket path of a <c>unix://</c> endpoint; null for TCP.</summary>
    public string? UnixPath { get; init; }

    /// <summary>Written with https://: the endpoint must serve TLS.</summary>
    public bool HttpsRequested { get; init; }

    public bool IsLocalhost => UnixPath is null && Address is null && Host == "localhost";

    /// <summary>Reachable only from this machine: a Unix socket, localhost, or a loopback address.</summary>
    public bool IsLoopback => UnixPath is not null || IsLocalhost || (Address is not null && !IsAny && IPAddress.IsLoopback(Address));

    public bool IsAny => Address is not null && (Address.Equals(IPAddress.Any) || Address.Equals(IPAddress.IPv6Any));

    /// <summary>The endpoint, or null with <paramref name="error"/> saying what is wrong.</summary>
    public static ListenEndpoint? Parse(string? value, out string error) => TryParse(value, out var endpoint, out error) ? endpoint : null;

    public static bool TryParse(string? value, [NotNullWhen(true)] out ListenEndpoint? endpoint, out string error)
    {
        endpoint = null;
        var text = (value ?? "").Trim();
        if (text.StartsWith(UnixScheme, StringComparison.OrdinalIgnoreCase))
        {
            var path = text[UnixScheme.Length..];
            if (!Path.IsPathFullyQualified(path) || path.EndsWith('/'))
            {
                error = $"\"{value}\": a Unix socket is unix:///absolute/path";
                return false;
            }

            if (!UnixSocketApi.PathFits(path))
            {
                error = $"\"{value}\": the socket path is longer than 107 bytes (sockaddr_un)";
                return false;
            }

            endpoint = new ListenEndpoint("unix", null, 0) { UnixPath = path };
            error = "";
            return true;
        }

        var https = text.StartsWith("https://", StringComparison.OrdinalIgnoreCase);
        if (https)
        {
            text = text["https://".Length..];
        }
        else if (text.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            text = text["http://".Length..];
        }

        text = text.TrimEnd('/');
        var colon = text.LastIndexOf(':');
        if (text.Length == 0 || colon < 0)
        {
            error = $"\"{value}\" is not host:port";
            return false;
        }

        var host = text[..colon];
        var portText = text[(colon + 1)..];
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
        {
            error = $"\"{value}\": port \"{portText}\" is not a number between 0 and 65535";
            return false;
        }

        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }

        IPAddress? address;
        if (host is "*" or "+" or "")
        {
            address = IPAddress.IPv6Any;
            host = "*";
        }
        else if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            address = null;
            host = "localhost";
        }
        else if (!IPAddress.TryParse(host, out address))
        {
            error = $"\"{value}\": host \"{host}\" must be localhost, * or an IP address";
            return false;
        }

        endpoint = new ListenEndpoint(host, address, port) { HttpsRequested = https };
        error = "";
        return true;
    }

    /// <summary>Whether two endpoints would try to bind the same socket.</summary>
    public bool Overlaps(ListenEndpoint other) =>
        UnixPath is not null || other.UnixPath is not null
            ? UnixPath == other.UnixPath
            : Port != 0 && Port == other.Port &&
        (IsAny || other.IsAny || IsLocalhost || other.IsLocalhost || Equals(Address, other.Address));

    /// <summary>The URL a client uses, given the port actually bound.</summary>
    public string Url(int boundPort, bool tls = false)
    {
        if (UnixPath is not null)
        {
            return UnixScheme + UnixPath;
        }

        var host = Address switch
        {
            null => "localhost",
            { AddressFamily: System.Net.Sockets.AddressFamily.InterNetworkV6 } a => $"[{a}]",
            var a => a.ToString(),
        };
        return $"{(tls ? "https" : "http")}://{host}:{boundPort}";
    }

    public override string ToString() => UnixPath is not null ? Url(0) : Address is null ? $"{Host}:{Port}" : Url(Port, HttpsRequested);
}

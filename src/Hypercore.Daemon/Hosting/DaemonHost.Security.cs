using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Hypercore.Api.Security;
using Hypercore.Daemon.Configuration;
using Hypercore.Daemon.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Hypercore.Daemon.Hosting;

/// <summary>The transport and identity half of the composition root (docs/security.md).</summary>
public static partial class DaemonHost
{
    /// <summary>The state directory's lock, or null with the problem (another daemon holds it, or the directory is unusable).</summary>
    private static NodeLock? AcquireNodeLock(IReadOnlyDictionary<string, string?> settings, out string problem, out bool heldByAnother)
    {
        heldByAnother = false;
        var dir = settings.TryGetValue(DaemonSettings.StateDirectory.ConfigKey, out var value) && !string.IsNullOrWhiteSpace(value)
            ? value
            : new DaemonOptions().StateDirectory;
        dir = Path.GetFullPath(dir);
        try
        {
            Directory.CreateDirectory(dir);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            problem = $"{DaemonSettings.StateDirectory.Name}: cannot create {dir}: {ex.Message}";
            return null;
        }

        var nodeLock = NodeLock.TryAcquire(Path.Combine(dir, "vistarad.lock"), out problem, out heldByAnother);
        problem = $"{DaemonSettings.StateDirectory.Name}: {problem}";
        return nodeLock;
    }

    private static ServerCertificate? ServerCertificateFor(DaemonOptions daemon) =>
        daemon.TlsEnabled && !string.IsNullOrWhiteSpace(daemon.TlsKey)
            ? ServerCertificate.TryLoad(daemon.TlsCert!, daemon.TlsKey!, TimeProvider.System, out _)
            : null;

    private static ListenOptions ListenUnix(KestrelServerOptions kestrel, string path, HttpProtocols protocols, BoundEndpoints endpoints)
    {
        endpoints.AddSocket(path);
        ListenOptions? captured = null;
        kestrel.Listen(new UnixDomainSocketEndPoint(path), o =>
        {
            o.Protocols = protocols;
            o.Use(next => connection =>
            {
                connection.Items[ApiSecurityMiddleware.ListenerItem] = ApiSecurityMiddleware.UnixListener;
                return next(connection);
            });
            captured = o;
        });
        return captured!;
    }

    /// <summary>Unix sockets are bound by <see cref="UnixSocket.Bind"/> (mode and group before listening), when Kestrel starts.</summary>
    private static void BindUnixSocketsWithMode(WebApplicationBuilder builder, DaemonOptions daemon)
    {
        var group = daemon.SocketGroup is { } name ? Libc.GroupId(name) : null;
        builder.WebHost.UseSockets(o => o.CreateBoundListenSocket = endpoint => endpoint is UnixDomainSocketEndPoint socket
            ? UnixSocket.Bind(socket.ToString(), group)
            : SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint));
    }

    private static void AddSecurity(IServiceCollection services, DaemonOptions daemon, ServerCertificate? certificate)
    {
        if (certificate is not null)
        {
            services.AddSingleton(certificate);
            services.AddSingleton<IHostedService>(sp =>
            {
                certificate.UseLogger(sp.GetRequiredService<ILoggerFactory>().CreateLogger("Hypercore.Daemon.Tls"));
                return certificate;
            });
        }

        services.AddApiSecurity(o =>
        {
            if (!string.IsNullOrWhiteSpace(daemon.TokenFile) && File.Exists(daemon.TokenFile))
            {
                o.Tokens = TokenFile.Parse(File.ReadAllText(daemon.TokenFile), out _);
            }

            if (!string.IsNullOrWhiteSpace(daemon.TlsClientCa))
            {
                o.ClientCertificateAuthorities = PemBundle.TryLoad(daemon.TlsClientCa, out _) ?? [];
            }

            o.Identities = daemon.Identities.Select(i => new IdentityGrant(i.Name, i.Namespaces, i.Write)).ToList();
            o.AllowedHosts = AllowedHosts(daemon);
            o.MaxRequestBodyBytes = daemon.MaxRequestBody;
        });
    }

    /// <summary>
    /// Host header values accepted on TCP: localhost and the loopback addresses, the node's names, the addresses the
    /// endpoints bind (every local address for *), and --allowed-hosts.
    /// </summary>
    internal static List<string> AllowedHosts(DaemonOptions daemon)
    {
        var hosts = new List<string> { "localhost", "127.0.0.1", "[::1]", daemon.NodeName, Environment.MachineName };
        foreach (var text in new[] { daemon.GrpcEndpoint, daemon.HttpEndpoint })
        {
            if (ListenEndpoint.Parse(text, out _) is not { Address: { } address } endpoint)
            {
                continue;
            }

            var addresses = endpoint.IsAny
                ? NetworkInterface.GetAllNetworkInterfaces().SelectMany(n => n.GetIPProperties().UnicastAddresses).Select(u => u.Address)
                : [address];
            hosts.AddRange(addresses.Select(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
                ? $"[{new IPAddress(a.GetAddressBytes())}]" // without the scope id, as a Host header carries it
                : a.ToString()));
        }

        if (daemon.AllowedHosts is { } extra)
        {
            hosts.AddRange(extra.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
        }

        return hosts.Select(h => h.ToLowerInvariant()).Distinct().ToList();
    }

    private static void LogSecurity(WebApplication app, ILogger log, DaemonOptions daemon, BoundEndpoints endpoints)
    {
        var security = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ApiSecurityOptions>>().Value;
        var credentials = security.RequiresCredentials
            ? $"{security.Tokens.Count} token(s)" + (security.ClientCertificateAuthorities.Count > 0 ? ", client certificates" : "")
            : "none required (anonymous callers are administrators)";
        LogTransport(log, endpoints.Tls ? "TLS" : "cleartext", credentials, security.Identities.Count, endpoints.Socket ?? "none",
            daemon.SocketGroup ?? "the daemon's group", daemon.Reflection);
        foreach (var (setting, text) in new[] { (DaemonSettings.GrpcEndpoint, daemon.GrpcEndpoint), (DaemonSettings.HttpEndpoint, daemon.HttpEndpoint) })
        {
            if (daemon.Insecure && ListenEndpoint.Parse(text, out _) is { IsLoopback: false } endpoint &&
                (!endpoints.Tls || !security.RequiresCredentials))
            {
                LogInsecure(log, setting.Name, endpoint.ToString(), endpoints.Tls ? "without credentials" : "without TLS" + (security.RequiresCredentials ? "" : " and without credentials"));
            }
        }
    }

    [LoggerMessage(9010, LogLevel.Information, "transport {Transport}; credentials: {Credentials}; {Identities} identity grant(s); Unix socket {Socket} (mode 0660, group {Group}); reflection {Reflection}")]
    private static partial void LogTransport(ILogger log, string transport, string credentials, int identities, string socket, string group, bool reflection);

    [LoggerMessage(9011, LogLevel.Warning, "--insecure: {Setting} {Endpoint} is reachable from other machines {What}: anyone who can reach it controls this node's VMs")]
    private static partial void LogInsecure(ILogger log, string setting, string endpoint, string what);
}

/// <summary>TLS on a TCP endpoint: the current (reloadable) certificate, and client certificates asked for when a client CA is set.</summary>
internal sealed class TlsListener(ServerCertificate certificate, bool requestClientCertificates)
{
    public void Apply(ListenOptions listen) => listen.UseHttps(new TlsHandshakeCallbackOptions
    {
        OnConnection = _ => ValueTask.FromResult(new SslServerAuthenticationOptions
        {
            ServerCertificateContext = certificate.Current,
            ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],

            // Asked for, not required, and not judged here: a client may use a token instead, and a refused
            // certificate is answered with a gRPC/HTTP status saying why (ApiSecurityMiddleware) rather than a
            // failed handshake that says nothing.
            ClientCertificateRequired = requestClientCertificates,
            RemoteCertificateValidationCallback = AcceptForLaterCheck,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        }),
    });

    // Client certificates are validated per connection by ApiSecurityMiddleware (ClientCertificates), after the handshake.
    private static bool AcceptForLaterCheck(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors) =>
        certificate is not null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable);
}

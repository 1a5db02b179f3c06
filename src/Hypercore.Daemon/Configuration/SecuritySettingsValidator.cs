using Hypercore.Api.Security;
using Hypercore.Daemon.Security;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Microsoft.Extensions.Options;

namespace Hypercore.Daemon.Configuration;

/// <summary>
/// Checks the transport and identity settings at start (exit 2 naming the setting): TLS files load, the token file
/// parses and is not readable by everyone, identities are well formed, and no endpoint off this machine is left
/// without TLS and credentials unless --insecure says so on purpose.
/// </summary>
internal sealed class SecuritySettingsValidator : IValidateOptions<DaemonOptions>
{
    public const long MinRequestBody = 1024;
    public const long MaxRequestBody = 64L * 1024 * 1024;

    public ValidateOptionsResult Validate(string? name, DaemonOptions o)
    {
        var errors = new List<string>();
        var tls = o.TlsEnabled;
        if (tls != !string.IsNullOrWhiteSpace(o.TlsKey))
        {
            errors.Add(tls
                ? $"{SecuritySettings.TlsKey.Name}: required with {SecuritySettings.TlsCert.Name} (the certificate's PEM private key)"
                : $"{SecuritySettings.TlsCert.Name}: required with {SecuritySettings.TlsKey.Name}");
        }
        else if (tls && ServerCertificate.TryLoadContext(o.TlsCert!, o.TlsKey!, out var problem) is null)
        {
            errors.Add($"{SecuritySettings.TlsCert.Name}: {problem}");
        }

        var clientCa = !string.IsNullOrWhiteSpace(o.TlsClientCa);
        if (clientCa && !tls)
        {
            errors.Add($"{SecuritySettings.TlsClientCa.Name}: needs {SecuritySettings.TlsCert.Name} and {SecuritySettings.TlsKey.Name} (client certificates are part of TLS)");
        }
        else if (clientCa && PemBundle.TryLoad(o.TlsClientCa!, out var caProblem) is null)
        {
            errors.Add($"{SecuritySettings.TlsClientCa.Name}: {caProblem}");
        }

        var tokens = !string.IsNullOrWhiteSpace(o.TokenFile);
        if (tokens)
        {
            CheckTokenFile(o.TokenFile!, errors);
        }

        foreach (var (setting, value) in new[] { (DaemonSettings.GrpcEndpoint, o.GrpcEndpoint), (DaemonSettings.HttpEndpoint, o.HttpEndpoint) })
        {
            if (ListenEndpoint.Parse(value, out _) is not { } endpoint)
            {
                continue; // reported by DaemonOptionsValidator
            }

            if (endpoint.HttpsRequested && !tls)
            {
                errors.Add($"{setting.Name}: {value} asks for https but {SecuritySettings.TlsCert.Name} and {SecuritySettings.TlsKey.Name} are not set");
            }

            if (!endpoint.IsLoopback && !o.Insecure)
            {
                if (!tls)
                {
                    errors.Add($"{setting.Name}: {value} is reachable from other machines but {SecuritySettings.TlsCert.Name} is not set: " +
                        $"give {SecuritySettings.TlsCert.Flag} and {SecuritySettings.TlsKey.Flag} (and {SecuritySettings.TlsClientCa.Flag} or {SecuritySettings.TokenFile.Flag}), " +
                        $"bind a loopback address, or pass {SecuritySettings.Insecure.Flag} to allow it on purpose");
                }
                else if (!clientCa && !tokens)
                {
                    errors.Add($"{setting.Name}: {value} is reachable from other machines but no credentials are configured: " +
                        $"give {SecuritySettings.TlsClientCa.Flag} or {SecuritySettings.TokenFile.Flag}, or pass {SecuritySettings.Insecure.Flag} to allow anyone on purpose");
                }
            }
        }

        if (o.SocketGroup is { } group && (string.IsNullOrWhiteSpace(group) || Libc.GroupId(group) is null))
        {
            errors.Add($"{SecuritySettings.SocketGroup.Name}: no group \"{group}\" on this machine");
        }

        if (o.Socket is { Length: > 0 } socket && socket != "none" &&
            (!Path.IsPathFullyQualified(socket) || !UnixSocketApi.PathFits(socket)))
        {
            errors.Add($"{SecuritySettings.Socket.Name}: \"{socket}\" must be an absolute path of at most 107 bytes, or none");
        }
        else if (o.SocketPath is { } path && !UnixSocketApi.PathFits(path))
        {
            errors.Add($"{SecuritySettings.Socket.Name}: {path} is longer than 107 bytes (sockaddr_un); give a shorter {SecuritySettings.Socket.Flag} or none");
        }

        if (o.MaxRequestBody is < MinRequestBody or > MaxRequestBody)
        {
            errors.Add($"{SecuritySettings.MaxRequestBody.Name}: {o.MaxRequestBody} must be between {MinRequestBody} and {MaxRequestBody} bytes");
        }

        if (o.AllowedHosts is { } hosts && hosts.Split(',').Any(h => h.Trim().Length == 0 || h.Trim().Contains(' ', StringComparison.Ordinal)))
        {
            errors.Add($"{SecuritySettings.AllowedHosts.Name}: \"{hosts}\" must be host names separated by commas, or *");
        }

        CheckIdentities(o.Identities, errors);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void CheckTokenFile(string path, List<string> errors)
    {
        string text;
        try
        {
            if ((File.GetUnixFileMode(path) & UnixFileMode.OtherRead) != 0)
            {
                errors.Add($"{SecuritySettings.TokenFile.Name}: {path} is readable by every user; chmod o-r it (e.g. 0600)");
                return;
            }

            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            errors.Add($"{SecuritySettings.TokenFile.Name}: cannot read {path}: {ex.Message}");
            return;
        }

        var tokens = TokenFile.Parse(text, out var problems);
        errors.AddRange(problems.Select(p => $"{SecuritySettings.TokenFile.Name}: {path}: {p}"));
        if (problems.Count == 0 && tokens.Count == 0)
        {
            errors.Add($"{SecuritySettings.TokenFile.Name}: {path} holds no \"TOKEN IDENTITY\" line");
        }
    }

    private static void CheckIdentities(List<IdentityOptions> identities, List<string> errors)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < identities.Count; i++)
        {
            var identity = identities[i];
            var what = $"{SecuritySettings.IdentitiesKey}: [[identities]] #{i + 1}";
            if (string.IsNullOrWhiteSpace(identity.Name))
            {
                errors.Add($"{what}: name is required");
            }
            else if (!names.Add(identity.Name))
            {
                errors.Add($"{what}: \"{identity.Name}\" is listed twice");
            }

            if (identity.Namespaces.Count == 0)
            {
                errors.Add($"{what} (\"{identity.Name}\"): namespaces is required (a list of namespaces, or [\"*\"] for all)");
            }

            foreach (var ns in identity.Namespaces.Where(n => n != IdentityGrant.AllNamespaces && !MicroVmSpecValidator.IsName(n)))
            {
                errors.Add($"{what} (\"{identity.Name}\"): \"{ns}\" is not a namespace name");
            }
        }
    }
}

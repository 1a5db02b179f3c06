using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Hypercore.Api.Security;

/// <summary>
/// Checks a client certificate against the configured CA(s) (<c>--tls-client-ca</c>): the chain must end at one of
/// them (the system's roots are not trusted for clients), every certificate must be valid at the time of the check,
/// and the certificate's extended key usage, if it has one, must allow client authentication. The identity is the
/// subject's CN, else the first DNS name in its SAN.
/// </summary>
public sealed class ClientCertificates
{
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    private readonly X509Certificate2Collection _authorities;
    private readonly TimeProvider _time;

    public ClientCertificates(X509Certificate2Collection authorities, TimeProvider time)
    {
        _authorities = authorities;
        _time = time;
    }

    public bool Enabled => _authorities.Count > 0;

    /// <summary>The identity, or null with <paramref name="problem"/> saying why the certificate is refused.</summary>
    public string? Validate(X509Certificate2 certificate, out string problem)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = _time.GetUtcNow().UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        chain.ChainPolicy.ApplicationPolicy.Add(ClientAuthentication);
        if (!chain.Build(certificate))
        {
            var statuses = chain.ChainStatus.Select(s => s.Status).ToHashSet();
            problem = statuses.Contains(X509ChainStatusFlags.NotTimeValid)
                ? $"client certificate \"{certificate.Subject}\" is not valid now (valid {certificate.NotBefore:u} to {certificate.NotAfter:u})"
                : statuses.Contains(X509ChainStatusFlags.UntrustedRoot) || statuses.Contains(X509ChainStatusFlags.PartialChain)
                    ? $"client certificate \"{certificate.Subject}\" (issuer \"{certificate.Issuer}\") is not issued by the daemon's --tls-client-ca"
                    : statuses.Contains(X509ChainStatusFlags.NotValidForUsage)
                        ? $"client certificate \"{certificate.Subject}\" is not valid for client authentication (extended key usage)"
                        : $"client certificate \"{certificate.Subject}\" is not valid: " +
                          string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
            return null;
        }

        var name = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        if (string.IsNullOrWhiteSpace(name) || name == certificate.Subject)
        {
            name = certificate.GetNameInfo(X509NameType.DnsName, forIssuer: false);
        }

        if (string.IsNullOrWhiteSpace(name))
        {
            problem = $"client certificate \"{certificate.Subject}\" names no identity (no CN and no DNS name in its SAN)";
            return null;
        }

        problem = "";
        return name;
    }
}

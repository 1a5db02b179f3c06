using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Hypercore.Testing;

/// <summary>
/// A throw-away certificate authority made with <see cref="CertificateRequest"/>: server and client certificates as
/// PEM files in a directory, the way an operator would hand them to vistarad and vis. ECDSA P-256 (fast to make).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class TestPki
{
    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    private readonly string _dir;

    private TestPki(string dir, string name, X509Certificate2 ca)
    {
        _dir = dir;
        Name = name;
        Ca = ca;
        CaPath = Path.Combine(dir, name + "-ca.pem");
        File.WriteAllText(CaPath, ca.ExportCertificatePem());
    }

    public string Name { get; }

    /// <summary>The CA, with its private key.</summary>
    public X509Certificate2 Ca { get; }

    /// <summary>The CA certificate as PEM (what --tls-client-ca and vis --tls-ca take).</summary>
    public string CaPath { get; }

    public static TestPki Create(string dir, string name = "test")
    {
        Directory.CreateDirectory(dir);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name} test CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        var ca = request.CreateSelfSigned(now.AddDays(-30), now.AddYears(1));
        return new TestPki(dir, name, ca);
    }

    /// <summary>A server certificate for localhost, 127.0.0.1 and ::1; returns (cert.pem, key.pem).</summary>
    public (string Cert, string Key) Server(string fileName = "server", string commonName = "vistarad", TimeSpan? validFor = null) =>
        Issue(fileName, commonName, ServerAuth, validFor ?? TimeSpan.FromDays(30), expired: false, server: true);

    /// <summary>A client certificate whose CN is <paramref name="identity"/>; returns (cert.pem, key.pem).</summary>
    public (string Cert, string Key) Client(string identity, bool expired = false) =>
        Issue("client-" + identity + (expired ? "-expired" : ""), identity, ClientAuth, TimeSpan.FromDays(30), expired, server: false);

    /// <summary>Loads a PEM pair as a certificate with a usable private key (for HttpClient / SslStream).</summary>
    public static X509Certificate2 Load((string Cert, string Key) pair)
    {
        using var pem = X509Certificate2.CreateFromPemFile(pair.Cert, pair.Key);
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>True when <paramref name="certificate"/> chains to this CA (a validation callback for test clients).</summary>
    public bool Trusts(X509Certificate? certificate)
    {
        if (certificate is null)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = new X509Certificate2(certificate);
        return chain.Build(leaf);
    }

    private (string Cert, string Key) Issue(string fileName, string commonName, Oid usage, TimeSpan validFor, bool expired, bool server)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([usage], false));
        if (server)
        {
            var san = new SubjectAlternativeNameBuilder();
            san.AddDnsName("localhost");
            san.AddIpAddress(IPAddress.Loopback);
            san.AddIpAddress(IPAddress.IPv6Loopback);
            request.CertificateExtensions.Add(san.Build());
        }

        var now = DateTimeOffset.UtcNow;
        var (from, to) = expired ? (now.AddDays(-10), now.AddDays(-1)) : (now.AddMinutes(-5), now.Add(validFor));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        using var issued = request.Create(Ca, from, to, serial);
        var certPath = Path.Combine(_dir, fileName + ".pem");
        var keyPath = Path.Combine(_dir, fileName + "-key.pem");
        File.WriteAllText(certPath, issued.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return (certPath, keyPath);
    }
}

using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Hypercore.Daemon.Security;

/// <summary>
/// The TLS certificate served on every TCP endpoint, from PEM files (certificate with its chain, and key). The files
/// are polled on the daemon's clock and a changed pair is loaded for the next handshake, so a renewed certificate
/// (cert-manager, certbot) is picked up without a restart. A pair that does not load is logged and the old one kept.
/// </summary>
internal sealed partial class ServerCertificate : BackgroundService
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(2);

    private readonly string _certPath;
    private readonly string _keyPath;
    private readonly TimeProvider _time;
    private ILogger _log;
    private string _stamp;
    private string _failed = "";

    private ServerCertificate(string certPath, string keyPath, TimeProvider time, SslStreamCertificateContext current)
    {
        _certPath = certPath;
        _keyPath = keyPath;
        _time = time;
        _log = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        Current = current;
        _stamp = Stamp();
    }

    /// <summary>What the next handshake presents.</summary>
    public SslStreamCertificateContext Current { get; private set; }

    /// <summary>The subject of the certificate in use (for logs and tests).</summary>
    public string Subject => Current.TargetCertificate.Subject;

    /// <summary>Loads the pair; null with <paramref name="problem"/> when it cannot.</summary>
    public static ServerCertificate? TryLoad(string certPath, string keyPath, TimeProvider time, out string problem)
    {
        var context = TryLoadContext(certPath, keyPath, out problem);
        return context is null ? null : new ServerCertificate(certPath, keyPath, time, context);
    }

    public static SslStreamCertificateContext? TryLoadContext(string certPath, string keyPath, out string problem)
    {
        try
        {
            using var loaded = X509Certificate2.CreateFromPemFile(certPath, keyPath);

            // Export/import once: a PEM-loaded key is ephemeral, which SslStream on some platforms refuses.
            var certificate = X509CertificateLoader.LoadPkcs12(loaded.Export(X509ContentType.Pkcs12), null);
            var chain = new X509Certificate2Collection();
            chain.ImportFromPemFile(certPath);
            var intermediates = new X509Certificate2Collection();
            foreach (var c in chain.Skip(1))
            {
                intermediates.Add(c);
            }

            problem = "";
            return SslStreamCertificateContext.Create(certificate, intermediates, offline: true);
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            problem = $"cannot load {certPath} with key {keyPath}: {ex.Message}";
            return null;
        }
    }

    public void UseLogger(ILogger log) => _log = log;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(PollInterval, _time, stoppingToken);
                var stamp = Stamp();
                if (stamp == _stamp || stamp == "unreadable" || stamp == _failed)
                {
                    continue;
                }

                // Writers replace the two files one after the other: a pair caught in between does not load, and
                // the stamp is left unchanged so the next poll tries again.
                if (TryLoadContext(_certPath, _keyPath, out var problem) is { } context)
                {
                    Current = context;
                    _stamp = stamp;
                    LogReloaded(_log, _certPath, context.TargetCertificate.Subject, context.TargetCertificate.NotAfter);
                }
                else
                {
                    _failed = stamp;
                    LogReloadFailed(_log, problem);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// A digest of both files' contents: a Kubernetes Secret volume swaps a symlink, which leaves no reliable
    /// modification time on the paths the daemon was given; the files are small.
    /// </summary>
    private string Stamp()
    {
        try
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            sha.AppendData(File.ReadAllBytes(_certPath));
            sha.AppendData(File.ReadAllBytes(_keyPath));
            return Convert.ToHexString(sha.GetHashAndReset());
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "unreadable";
        }
    }

    [LoggerMessage(9012, LogLevel.Information, "TLS certificate reloaded from {Path}: {Subject}, valid until {NotAfter:u}")]
    private static partial void LogReloaded(ILogger log, string path, string subject, DateTime notAfter);

    [LoggerMessage(9013, LogLevel.Warning, "TLS certificate changed but does not load; still serving the previous one: {Problem}")]
    private static partial void LogReloadFailed(ILogger log, string problem);
}

/// <summary>PEM CA bundles (for --tls-client-ca).</summary>
internal static class PemBundle
{
    public static X509Certificate2Collection? TryLoad(string path, out string problem)
    {
        try
        {
            var certificates = new X509Certificate2Collection();
            certificates.ImportFromPemFile(path);
            problem = certificates.Count == 0 ? $"{path} holds no PEM certificate" : "";
            return certificates.Count == 0 ? null : certificates;
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException)
        {
            problem = $"cannot load {path}: {ex.Message}";
            return null;
        }
    }
}

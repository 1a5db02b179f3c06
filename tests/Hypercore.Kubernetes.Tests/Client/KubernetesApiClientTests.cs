using System.Net;
using System.Net.Http;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.Store.Kubernetes.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Kubernetes.Tests.Client;

/// <summary>
/// The store's own Kubernetes client (the AOT-safe replacement of KubernetesClient): what it reads from a kubeconfig
/// and how it authenticates. The store's behaviour over it is what the rest of this project tests.
/// </summary>
[TestFixture]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class KubernetesApiClientTests
{
    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hc-aotk8s-client-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    [Test]
    public async Task ClientCertificateAndCaFiles_ConnectOverMutualTls()
    {
        var (ca, server, client) = Pki();
        File.WriteAllText(Path.Combine(_dir.FullName, "ca.crt"), ca.ExportCertificatePem());
        File.WriteAllText(Path.Combine(_dir.FullName, "client.crt"), client.ExportCertificatePem());
        File.WriteAllText(Path.Combine(_dir.FullName, "client.key"), client.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        await using var app = await HttpsServerAsync(server, ca);
        var kubeconfig = Kubeconfig(app.Port, """
                certificate-authority: ca.crt
            """, """
                client-certificate: client.crt
                client-key: client.key
            """);

        using var api = new KubernetesApiClient(KubernetesApiConfig.FromKubeconfig(kubeconfig));
        var nodes = await api.CoreV1.ListNodeAsync();

        ((string?)nodes["items"]![0]!["metadata"]!["name"]).Should().Be("node-1");
        app.ClientSubjects.Should().ContainSingle().Which.Should().Be(client.Subject, "the kubeconfig's client certificate was presented");
    }

    [Test]
    public async Task InlineCaAndClientData_ConnectOverMutualTls()
    {
        var (ca, server, client) = Pki();
        await using var app = await HttpsServerAsync(server, ca);
        static string B64(string pem) => Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(pem));
        var kubeconfig = Kubeconfig(app.Port, $"""
                certificate-authority-data: {B64(ca.ExportCertificatePem())}
            """, $"""
                client-certificate-data: {B64(client.ExportCertificatePem())}
                client-key-data: {B64(client.GetECDsaPrivateKey()!.ExportECPrivateKeyPem())}
            """);

        using var api = new KubernetesApiClient(KubernetesApiConfig.FromKubeconfig(kubeconfig));
        await api.CoreV1.ListNodeAsync();

        app.ClientSubjects.Should().ContainSingle().Which.Should().Be(client.Subject);
    }

    [Test]
    public async Task ServerNotSignedByTheKubeconfigCa_IsRefused()
    {
        var (ca, server, client) = Pki();
        var (otherCa, _, _) = Pki();
        await using var app = await HttpsServerAsync(server, ca);
        File.WriteAllText(Path.Combine(_dir.FullName, "ca.crt"), otherCa.ExportCertificatePem());
        File.WriteAllText(Path.Combine(_dir.FullName, "client.crt"), client.ExportCertificatePem());
        File.WriteAllText(Path.Combine(_dir.FullName, "client.key"), client.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        var kubeconfig = Kubeconfig(app.Port, """
                certificate-authority: ca.crt
            """, """
                client-certificate: client.crt
                client-key: client.key
            """);

        using var api = new KubernetesApiClient(KubernetesApiConfig.FromKubeconfig(kubeconfig));
        var act = () => api.CoreV1.ListNodeAsync();

        await act.Should().ThrowAsync<HttpRequestException>();
        app.ClientSubjects.Should().BeEmpty("no request got through");
    }

    [Test]
    public async Task TokenFile_IsSentAndReadAgainAfterAMinute()
    {
        await using var cluster = await FakeCluster.StartAsync();
        var tokenFile = Path.Combine(_dir.FullName, "token");
        File.WriteAllText(tokenFile, "node-first\n");
        var server = cluster.Server.BaseAddress.GetLeftPart(UriPartial.Authority);
        var kubeconfig = Path.Combine(_dir.FullName, "kubeconfig");
        File.WriteAllText(kubeconfig, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster:
                server: {server}
            users:
            - name: u
              user:
                tokenFile: token
            contexts:
            - name: x
              context: {"{"} cluster: c, user: u {"}"}
            current-context: x
            """);
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-30T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        using var api = new KubernetesApiClient(KubernetesApiConfig.FromKubeconfig(kubeconfig), time);

        await api.CustomObjects.ListCustomObjectForAllNamespacesAsync("hypercore.vistara.dev", "v1alpha1", "microvms");
        File.WriteAllText(tokenFile, "node-second");
        await api.CustomObjects.ListCustomObjectForAllNamespacesAsync("hypercore.vistara.dev", "v1alpha1", "microvms");
        time.Advance(TimeSpan.FromSeconds(61));
        await api.CustomObjects.ListCustomObjectForAllNamespacesAsync("hypercore.vistara.dev", "v1alpha1", "microvms");

        cluster.Server.Requests.Where(r => r.Resource == "microvms").Select(r => r.Token)
            .Should().Equal(["node-first", "node-first", "node-second"], "a rotated service-account token is picked up within a minute");
    }

    [Test]
    public void Kubeconfig_ContextNotInIt_IsNamed()
    {
        var kubeconfig = Kubeconfig(443, "", "    token: t\n");

        var act = () => KubernetesApiConfig.FromKubeconfig(kubeconfig, "elsewhere");

        act.Should().Throw<KubeconfigException>().WithMessage("context 'elsewhere' not found in the kubeconfig");
    }

    [Test]
    public void Kubeconfig_AuthProvider_IsRefusedSayingWhatWorks()
    {
        var kubeconfig = Kubeconfig(443, "", "    auth-provider:\n      name: oidc\n");

        var act = () => KubernetesApiConfig.FromKubeconfig(kubeconfig);

        act.Should().Throw<KubeconfigException>().WithMessage("user 'u' uses an auth-provider*use a token, a client certificate or an exec plugin");
    }

    [Test]
    public void Kubeconfig_CertificateWithoutKey_IsRefused()
    {
        var (_, _, client) = Pki();
        File.WriteAllText(Path.Combine(_dir.FullName, "client.crt"), client.ExportCertificatePem());
        var kubeconfig = Kubeconfig(443, "", "    client-certificate: client.crt\n");

        var act = () => KubernetesApiConfig.FromKubeconfig(kubeconfig);

        act.Should().Throw<KubeconfigException>().WithMessage("*client certificate without its key*");
    }

    [Test]
    public async Task ExecPlugin_TokenIsSent()
    {
        await using var cluster = await FakeCluster.StartAsync();
        var plugin = Path.Combine(_dir.FullName, "plugin.sh");
        File.WriteAllText(plugin, "#!/bin/sh\necho \"{\\\"apiVersion\\\":\\\"client.authentication.k8s.io/v1\\\",\\\"kind\\\":\\\"ExecCredential\\\",\\\"status\\\":{\\\"token\\\":\\\"node-$1\\\"}}\"\n");
        File.SetUnixFileMode(plugin, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var server = cluster.Server.BaseAddress.GetLeftPart(UriPartial.Authority);
        var kubeconfig = Path.Combine(_dir.FullName, "kubeconfig");
        File.WriteAllText(kubeconfig, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster:
                server: {server}
            users:
            - name: u
              user:
                exec:
                  apiVersion: client.authentication.k8s.io/v1
                  command: ./plugin.sh
                  args: [exec]
            contexts:
            - name: x
              context: {"{"} cluster: c, user: u {"}"}
            current-context: x
            """);
        using var api = new KubernetesApiClient(KubernetesApiConfig.FromKubeconfig(kubeconfig));

        await api.CustomObjects.ListCustomObjectForAllNamespacesAsync("hypercore.vistara.dev", "v1alpha1", "microvms");

        cluster.Server.Requests.Where(r => r.Resource == "microvms").Select(r => r.Token).Should().Equal("node-exec");
    }

    private string Kubeconfig(int port, string clusterExtra, string userLines)
    {
        var path = Path.Combine(_dir.FullName, "kubeconfig");
        File.WriteAllText(path, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster:
                server: https://127.0.0.1:{port}
            {clusterExtra}
            users:
            - name: u
              user:
            {userLines}
            contexts:
            - name: x
              context:
                cluster: c
                user: u
            current-context: x
            """);
        return path;
    }

    /// <summary>A CA, a server certificate for localhost and a client certificate, both issued by the CA.</summary>
    private static (X509Certificate2 Ca, X509Certificate2 Server, X509Certificate2 Client) Pki()
    {
        var now = DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=test-ca", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var ca = caRequest.CreateSelfSigned(now, now.AddYears(5));

        X509Certificate2 Issue(string subject, bool server)
        {
            var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
                [new Oid(server ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
            if (server)
            {
                var san = new SubjectAlternativeNameBuilder();
                san.AddDnsName("localhost");
                san.AddIpAddress(IPAddress.Loopback);
                request.CertificateExtensions.Add(san.Build());
            }

            var serial = RandomNumberGenerator.GetBytes(8);
            using var cert = request.Create(ca, now, now.AddYears(2), serial);
            return cert.CopyWithPrivateKey(key);
        }

        return (ca, Issue("CN=localhost", server: true), Issue("CN=node-1", server: false));
    }

    private static async Task<TlsServer> HttpsServerAsync(X509Certificate2 serverCert, X509Certificate2 ca)
    {
        var subjects = new List<string>();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.UseHttps(new HttpsConnectionAdapterOptions
        {
            // Kestrel does not keep an ephemeral key usable on every platform: hand it a PKCS#12 round trip.
            ServerCertificate = X509CertificateLoader.LoadPkcs12(serverCert.Export(X509ContentType.Pkcs12), null),
            ClientCertificateMode = ClientCertificateMode.RequireCertificate,
            ClientCertificateValidation = (cert, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(ca);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(cert);
            },
        })));
        var app = builder.Build();
        app.Run(async ctx =>
        {
            lock (subjects)
            {
                subjects.Add(ctx.Connection.ClientCertificate?.Subject ?? "");
            }

            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync(new JsonObject
            {
                ["kind"] = "NodeList", ["apiVersion"] = "v1",
                ["items"] = new JsonArray(new JsonObject { ["metadata"] = new JsonObject { ["name"] = "node-1" } }),
            }.ToJsonString());
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses.First();
        return new TlsServer(app, new Uri(address).Port, subjects);
    }

    private sealed class TlsServer(WebApplication app, int port, List<string> subjects) : IAsyncDisposable
    {
        public int Port => port;

        public IReadOnlyList<string> ClientSubjects
        {
            get
            {
                lock (subjects)
                {
                    return subjects.ToList();
                }
            }
        }

        public ValueTask DisposeAsync() => app.DisposeAsync();
    }
}

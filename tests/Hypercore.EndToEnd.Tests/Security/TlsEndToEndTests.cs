using System.Diagnostics;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Hypercore.Client;
using Hypercore.Contracts.VmApi;
using Hypercore.EndToEnd.Tests.Hostile;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests.Security;

/// <summary>
/// TLS and client certificates end to end, with certificates this test makes (CertificateRequest): the real vis, the
/// .NET client and a plain HTTPS client against the real vistarad, over HTTP/1.1 and HTTP/2 on one TLS port (ALPN),
/// the Unix socket for the local administrator, and a renewed server certificate picked up without a restart.
/// </summary>
[NonParallelizable]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class TlsEndToEndTests
{
    private SecureNode _node = null!;

    [OneTimeSetUp]
    public async Task StartNode()
    {
        _node = await SecureNode.StartAsync();
        await _node.SeedAsync("team-a", "mine");
    }

    [OneTimeTearDown]
    public async Task StopNode()
    {
        if (_node is not null)
        {
            await _node.DisposeAsync();
        }
    }

    private async Task<VisResult> VisAsync(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(BuiltPrograms.VisDll);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var name in new[] { "VIS_HOST", "VIS_TLS_CA", "VIS_TLS_CERT", "VIS_TLS_KEY", "VIS_TOKEN_FILE" })
        {
            info.Environment.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        var stopwatch = Stopwatch.StartNew();
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        return new VisResult(args, process.ExitCode, await stdout, await stderr, stopwatch.Elapsed);
    }

    [Test]
    public async Task Vis_WithClientCertificateFlags_ListsAsItsIdentity()
    {
        var (cert, key) = _node.Pki.Client("alice");

        var result = await VisAsync(new Dictionary<string, string>(),
            "--host", _node.Node.GrpcUrl, "--tls-ca", _node.Pki.CaPath, "--tls-cert", cert, "--tls-key", key, "list", "-o", "json");

        result.ExitCode.Should().Be(0, result.ToString());
        result.Stdout.Should().Contain("\"mine\"");
    }

    [Test]
    public async Task Vis_WithEnvironmentVariables_AndNoSchemeInTheHost_UsesTls()
    {
        var (cert, key) = _node.Pki.Client("alice");
        var hostPort = new Uri(_node.Node.GrpcUrl).Authority;

        var result = await VisAsync(
            new Dictionary<string, string> { ["VIS_HOST"] = hostPort, ["VIS_TLS_CA"] = _node.Pki.CaPath, ["VIS_TLS_CERT"] = cert, ["VIS_TLS_KEY"] = key },
            "get", "mine", "-n", "team-a", "-o", "json");

        result.ExitCode.Should().Be(0, result.ToString());
    }

    // Images (issue 11): the image cache is shared by every namespace, so removing from it is the administrator's.
    [TestCase("team-a", SecureNode.TeamAToken)]
    [TestCase("reader", SecureNode.ReaderToken)]
    public async Task VisImageRmAndPrune_NonAdministratorToken_PermissionDenied_ListAllowed(string identity, string token)
    {
        var tokenFile = Path.Combine(_node.Node.Root, $"vis-token-{identity}");
        await File.WriteAllTextAsync(tokenFile, token + "\n");
        File.SetUnixFileMode(tokenFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var environment = new Dictionary<string, string> { ["VIS_TOKEN_FILE"] = tokenFile };
        string[] connect = ["--host", _node.Node.GrpcUrl, "--tls-ca", _node.Pki.CaPath];

        foreach (var command in new[] { new[] { "image", "rm", "localhost:5000/hypercore/default:1" }, ["image", "prune"] })
        {
            var refused = await VisAsync(environment, [.. connect, .. command]);

            refused.ExitCode.Should().Be(9, "PermissionDenied: " + refused);
            refused.Stderr.Should().Contain("PermissionDenied").And.Contain($"identity \"{identity}\" may not remove cached images")
                .And.Contain("namespaces = [\"*\"] and write = true");
        }

        var listed = await VisAsync(environment, [.. connect, "image", "ls"]);
        listed.ExitCode.Should().Be(0, "listing is open to any granted identity: " + listed);
    }

    [Test]
    public async Task VisImageRmAndPrune_AdministratorToken_ReachTheCache()
    {
        var tokenFile = Path.Combine(_node.Node.Root, "vis-token-admin");
        await File.WriteAllTextAsync(tokenFile, SecureNode.AdminToken + "\n");
        File.SetUnixFileMode(tokenFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var environment = new Dictionary<string, string> { ["VIS_TOKEN_FILE"] = tokenFile };
        string[] connect = ["--host", _node.Node.GrpcUrl, "--tls-ca", _node.Pki.CaPath];

        var rm = await VisAsync(environment, [.. connect, "image", "rm", "localhost:5000/hypercore/default:1"]);
        var prune = await VisAsync(environment, [.. connect, "image", "prune"]);

        rm.ExitCode.Should().Be(3, "allowed, and the (empty) cache does not hold it: NotFound: " + rm);
        prune.ExitCode.Should().Be(0, prune.ToString());
    }

    [Test]
    public async Task Vis_WithTokenFile_Lists()
    {
        var result = await VisAsync(new Dictionary<string, string> { ["VIS_TOKEN_FILE"] = _node.TokenFile },
            "--host", _node.Node.GrpcUrl, "--tls-ca", _node.Pki.CaPath, "list", "-o", "json");

        result.ExitCode.Should().Be(0, result.ToString());
        result.Stdout.Should().Contain("\"mine\"");
    }

    [Test]
    public async Task Vis_WithoutCredentials_Exits9()
    {
        var result = await VisAsync(new Dictionary<string, string>(), "--host", _node.Node.GrpcUrl, "--tls-ca", _node.Pki.CaPath, "list");

        result.ExitCode.Should().Be(9, result.ToString());
        result.Stderr.Should().Contain("Unauthenticated");
    }

    [Test]
    public async Task Vis_NotTrustingTheDaemonsCa_Exits7()
    {
        var (cert, key) = _node.Pki.Client("alice");

        var result = await VisAsync(new Dictionary<string, string>(),
            "--host", _node.Node.GrpcUrl, "--tls-ca", _node.OtherPki.CaPath, "--tls-cert", cert, "--tls-key", key, "list");

        result.ExitCode.Should().Be(7, result.ToString());
    }

    [Test]
    public async Task Vis_OnTheUnixSocket_NeedsNoCredentials()
    {
        var result = await VisAsync(new Dictionary<string, string> { ["VIS_HOST"] = "unix://" + _node.Socket }, "list", "-o", "json");

        result.ExitCode.Should().Be(0, result.ToString());
        result.Stdout.Should().Contain("\"mine\"");
        File.GetUnixFileMode(_node.Socket).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
    }

    [Test]
    public async Task DotNetClient_WithClientCertificate_GetsItsVm()
    {
        var (cert, key) = _node.Pki.Client("alice");
        using var client = HypercoreClient.Connect(_node.Node.GrpcUrl, new HypercoreClientOptions { TlsCaFile = _node.Pki.CaPath, TlsCertFile = cert, TlsKeyFile = key });

        var vm = await client.GetMicroVmAsync("mine", "team-a");

        vm.Spec.Namespace.Should().Be("team-a");
        client.Address.Scheme.Should().Be("https");
    }

    [Test]
    public async Task DotNetClient_WithToken_Lists()
    {
        using var client = HypercoreClient.Connect(_node.Node.GrpcUrl, new HypercoreClientOptions { TlsCaFile = _node.Pki.CaPath, Token = SecureNode.TeamAToken });

        var reply = await client.Service.ListAsync(new ListMicroVMsRequest());

        reply.Microvm.Select(v => v.Spec.Id).Should().Equal("mine");
    }

    [TestCase(1)]
    [TestCase(2)]
    public async Task HttpsClient_WithClientCertificate_GetsJson_OverHttp1AndHttp2(int major)
    {
        using var http = _node.Https(TestPki.Load(_node.Pki.Client("alice")));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/microvms?namespace=team-a")
        {
            Version = new Version(major, 0),
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };

        using var response = await http.SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        response.Version.Major.Should().Be(major);
        (await response.Content.ReadAsStringAsync()).Should().Contain("\"mine\"");
    }

    [Test]
    public async Task ServerCertificate_ReplacedOnDisk_IsServedWithoutRestart()
    {
        var pid = _node.Node.Daemon.Pid;
        var before = await ServedSubjectAsync();

        // Renew in place, as cert-manager or certbot would: same paths, new certificate and key.
        _node.Pki.Server("server", commonName: "vistarad-renewed");
        var stopwatch = Stopwatch.StartNew();
        var after = before;
        while (stopwatch.Elapsed < TimeSpan.FromSeconds(60) && !after.Contains("vistarad-renewed", StringComparison.Ordinal))
        {
            await Task.Delay(250);
            after = await ServedSubjectAsync();
        }

        before.Should().Be("CN=vistarad");
        after.Should().Be("CN=vistarad-renewed", _node.Node.Daemon.Stderr);
        _node.Node.Daemon.Pid.Should().Be(pid);
        _node.Node.Daemon.HasExited.Should().BeFalse();
        await _node.Node.Daemon.WaitForLogAsync("TLS certificate reloaded", TimeSpan.FromSeconds(10));

        // And the renewed certificate works for the clients too.
        var (cert, key) = _node.Pki.Client("alice");
        using var client = HypercoreClient.Connect(_node.Node.GrpcUrl, new HypercoreClientOptions { TlsCaFile = _node.Pki.CaPath, TlsCertFile = cert, TlsKeyFile = key });
        (await client.GetMicroVmAsync("mine", "team-a")).Spec.Id.Should().Be("mine");
    }

    /// <summary>The subject of the certificate a new TLS connection is given.</summary>
    private async Task<string> ServedSubjectAsync()
    {
        string? subject = null;
        using var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, certificate, _, _) =>
            {
                subject = certificate?.Subject;
                return _node.Pki.Trusts(certificate);
            },
        };
        using var http = new HttpClient(handler) { BaseAddress = _node.HttpUrl };
        using var response = await http.GetAsync("/v1/microvms");
        return subject ?? "";
    }
}

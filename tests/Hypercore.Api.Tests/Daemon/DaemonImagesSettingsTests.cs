using System.Runtime.Versioning;
using Hypercore.Daemon.Cli;
using Hypercore.Daemon.Hosting;
using Hypercore.Images;
using Hypercore.Images.Cache;
using Hypercore.Images.Registry;
using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>Images (issue 11): registry and cache settings reach the images library, bad ones stop the daemon (exit 2).</summary>
[SupportedOSPlatform("linux")]
public sealed class DaemonImagesSettingsTests
{
    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-images-settings-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    [Test]
    public async Task Run_RegistryCredentialsFileMissing_ExitsWith2NamingIt()
    {
        var missing = Path.Combine(_dir.FullName, "no-config.json");

        var (code, stdout, stderr) = await RunAsync("--registry-credentials", missing);

        code.Should().Be(2, stderr);
        stderr.Should().Contain($"registry-credentials: {missing} does not exist");
        stdout.Should().NotContain("vistarad ready");
    }

    [Test]
    public async Task Run_RegistryCaNotPem_And_InsecureRegistryWithScheme_ExitWith2NamingThem()
    {
        var ca = Path.Combine(_dir.FullName, "ca.pem");
        await File.WriteAllTextAsync(ca, "not a certificate");

        var (code, _, stderr) = await RunAsync("--registry-ca", ca, "--insecure-registries", "http://localhost:5000");

        code.Should().Be(2, stderr);
        stderr.Should().Contain($"registry-ca {ca} holds no PEM certificate")
            .And.Contain("host[:port] as written in references (e.g. localhost:5000), got \"http://localhost:5000\"");
    }

    [Test]
    public async Task Build_Settings_ReachTheRegistryClientTheCacheAndTheStartStep()
    {
        await using var app = DaemonHost.Build(new Dictionary<string, string?>
        {
            ["Daemon:StateDirectory"] = _dir.FullName,
            ["Daemon:GrpcEndpoint"] = "127.0.0.1:0",
            ["Daemon:HttpEndpoint"] = "127.0.0.1:0",
            ["Daemon:InsecureRegistries"] = "localhost:5000, registry.lan:5000",
            ["Images:Cache:SizeLimitBytes"] = "1073741824",
        }, new BoundEndpoints());

        app.Services.GetRequiredService<IOptions<RegistryOptions>>().Value.InsecureRegistries.Should().Equal("localhost:5000", "registry.lan:5000");
        var cache = app.Services.GetRequiredService<IOptions<ImageCacheOptions>>().Value;
        cache.Root.Should().Be(Path.Combine(_dir.FullName, "image-cache"), "apart from the named-image folders in images/");
        cache.SizeLimitBytes.Should().Be(1073741824);
        app.Services.GetServices<IStartStep>().Should().ContainSingle(s => s.Name == "images" && s.Order == 200);
    }

    [Test]
    public async Task Run_AllowedRegistryWithSchemeOrWildcard_ExitsWith2NamingIt()
    {
        var (code, _, stderr) = await RunAsync("--allowed-registries", "https://ghcr.io,*.example.com");

        code.Should().Be(2, stderr);
        stderr.Should().Contain("allowed-registries: \"https://ghcr.io\" must be host[:port]")
            .And.Contain("allowed-registries: \"*.example.com\" must be host[:port]");
    }

    [Test]
    public async Task Build_NoAllowedRegistries_RefusesEveryRegistry_AndInsecureOnesCountAsAllowed()
    {
        await using (var bare = DaemonHost.Build(new Dictionary<string, string?>
        {
            ["Daemon:StateDirectory"] = Path.Combine(_dir.FullName, "a"),
            ["Daemon:GrpcEndpoint"] = "127.0.0.1:0",
            ["Daemon:HttpEndpoint"] = "127.0.0.1:0",
        }, new BoundEndpoints()))
        {
            var none = bare.Services.GetRequiredService<RegistryAllowList>();
            none.Registries.Should().BeEmpty("safe by default: no caller makes the node connect anywhere it was not given");
            none.Refusal("kernel.image", "ghcr.io/org/kernel:1").Should().Contain("allowed: none").And.Contain("--allowed-registries ghcr.io");
        }

        await using var app = DaemonHost.Build(new Dictionary<string, string?>
        {
            ["Daemon:StateDirectory"] = Path.Combine(_dir.FullName, "b"),
            ["Daemon:GrpcEndpoint"] = "127.0.0.1:0",
            ["Daemon:HttpEndpoint"] = "127.0.0.1:0",
            ["Daemon:AllowedRegistries"] = "ghcr.io, docker.io",
            ["Daemon:InsecureRegistries"] = "localhost:5000",
        }, new BoundEndpoints());

        app.Services.GetRequiredService<RegistryAllowList>().Registries.Should().Equal("docker.io", "ghcr.io", "localhost:5000");
    }

    private async Task<(int Code, string Stdout, string Stderr)> RunAsync(params string[] flags)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        string[] args = ["run", "--state-dir", _dir.FullName, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", .. flags];
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var code = await DaemonCli.RunAsync(args, stdout, stderr, stop.Token);
        return (code, stdout.ToString(), stderr.ToString());
    }
}

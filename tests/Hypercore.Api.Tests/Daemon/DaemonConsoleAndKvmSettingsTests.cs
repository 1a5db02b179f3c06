using System.Runtime.Versioning;
using Hypercore.Consoles;
using Hypercore.Daemon.Cli;
using Hypercore.Daemon.Configuration;
using Hypercore.Daemon.Hosting;
using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Firecracker;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>--console-log-max-bytes and --kvm-device: validated at start (exit 2 naming them), and reaching the options.</summary>
[SupportedOSPlatform("linux")]
public sealed class DaemonConsoleAndKvmSettingsTests
{
    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-console-settings-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    [TestCase("abc")]
    [TestCase("16MiB")]
    [TestCase("-1")]
    [TestCase("4095")]
    public async Task Run_ConsoleLogMaxBytesNotAWholeNumberOfAtLeast4096_ExitsWith2NamingIt(string value)
    {
        var (code, stdout, stderr) = await RunAsync("--console-log-max-bytes", value);

        code.Should().Be(2, stderr);
        stderr.Should().Contain($"console-log-max-bytes: expected a whole number from 4096 to {long.MaxValue}, got '{value}'");
        stdout.Should().NotContain("vistarad ready");
        File.Exists(Path.Combine(_dir.FullName, "hypercore.db")).Should().BeFalse("nothing starts on a bad setting");
    }

    [Test]
    public async Task Run_KvmDeviceRelative_ExitsWith2NamingIt()
    {
        var (code, _, stderr) = await RunAsync("--kvm-device", "dev/kvm");

        code.Should().Be(2, stderr);
        stderr.Should().Contain("kvm-device must be an absolute path, got \"dev/kvm\"");
    }

    [Test]
    public void Toml_Keys_MapToConfigurationKeys()
    {
        var values = TomlSettingsFile.Parse("""
            console-log-max-bytes = 1048576
            kvm-device = "/dev/kvm-elsewhere"
            """, "test.toml");

        values.Should().BeEquivalentTo(new Dictionary<string, string?>
        {
            ["Consoles:MaxBytes"] = "1048576",
            ["Firecracker:KvmDevicePath"] = "/dev/kvm-elsewhere",
        });
    }

    [Test]
    public async Task Build_GivenSettings_ReachTheRotatorAndTheDrivers()
    {
        await using var app = Build(new Dictionary<string, string?>
        {
            ["Consoles:MaxBytes"] = "1048576",
            ["Firecracker:KvmDevicePath"] = "/srv/fake-kvm",
        });

        app.Services.GetRequiredService<IOptions<ConsoleLogOptions>>().Value.MaxBytes.Should().Be(1048576);
        app.Services.GetRequiredService<IOptions<FirecrackerOptions>>().Value.KvmDevicePath.Should().Be("/srv/fake-kvm");
        app.Services.GetRequiredService<IOptions<CloudHypervisorOptions>>().Value.KvmDevicePath.Should().Be("/srv/fake-kvm");
        app.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<ConsoleLogRotator>().Should().ContainSingle();
    }

    [Test]
    public async Task Build_NoSettings_Keeps16MiBAndDevKvm()
    {
        await using var app = Build([]);

        app.Services.GetRequiredService<IOptions<ConsoleLogOptions>>().Value.MaxBytes.Should().Be(16 * 1024 * 1024);
        app.Services.GetRequiredService<IOptions<FirecrackerOptions>>().Value.KvmDevicePath.Should().Be("/dev/kvm");
        app.Services.GetRequiredService<IOptions<CloudHypervisorOptions>>().Value.KvmDevicePath.Should().Be("/dev/kvm");
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

    private Microsoft.AspNetCore.Builder.WebApplication Build(Dictionary<string, string?> settings)
    {
        settings["Daemon:StateDirectory"] = _dir.FullName;
        settings["Daemon:GrpcEndpoint"] = "127.0.0.1:0";
        settings["Daemon:HttpEndpoint"] = "127.0.0.1:0";
        return DaemonHost.Build(settings, new BoundEndpoints());
    }
}

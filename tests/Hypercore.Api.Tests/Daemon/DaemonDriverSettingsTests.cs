using System.Runtime.Versioning;
using Hypercore.Daemon.Cli;
using Hypercore.Daemon.Configuration;
using Hypercore.Daemon.Hosting;
using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Unikernel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// The driver settings (--firecracker-bin, --jailer-bin/-uid/-gid, --cloud-hypervisor-bin, --ops-bin, --ops-home,
/// --unikernel-qemu-bin): bad values stop the daemon with exit 2 naming the setting; good ones reach the drivers' options.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class DaemonDriverSettingsTests
{
    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-driver-settings-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    private async Task<(int Code, string Stdout, string Stderr)> RunAsync(params string[] flags)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        string[] args = ["run", "--state-dir", _dir.FullName, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", .. flags];
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60)); // a daemon that wrongly starts must not hang the test
        var code = await DaemonCli.RunAsync(args, stdout, stderr, stop.Token);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [TestCase("--firecracker-bin")]
    [TestCase("--jailer-bin")]
    [TestCase("--cloud-hypervisor-bin")]
    [TestCase("--ops-bin")]
    [TestCase("--unikernel-qemu-bin")]
    public async Task Run_EmptyBinaryPath_ExitsWith2NamingTheSetting(string flag)
    {
        var (code, stdout, stderr) = await RunAsync(flag, "  ");

        code.Should().Be(2, stderr);
        stderr.Should().Contain($"{flag[2..]} must not be empty");
        stderr.Should().NotContain("Firecracker:").And.NotContain("Unikernel:").And.NotContain("CloudHypervisor:", "the daemon names the settings as the user types them");
        stdout.Should().NotContain("vistarad ready");
        File.Exists(Path.Combine(_dir.FullName, "hypercore.db")).Should().BeFalse("nothing starts on a bad setting");
    }

    [Test]
    public async Task Run_JailerWithoutIds_ExitsWith2NamingBoth()
    {
        var (code, _, stderr) = await RunAsync("--jailer-bin", "/usr/local/bin/jailer");

        code.Should().Be(2);
        stderr.Should().Contain("jailer-uid is required with jailer-bin").And.Contain("jailer-gid is required with jailer-bin");
        stderr.Should().NotContain("Firecracker:Jailer", "the daemon names its own settings, once");
    }

    [Test]
    public async Task Run_JailerIdNotANumber_ExitsWith2()
    {
        var (code, _, stderr) = await RunAsync("--jailer-bin", "/usr/local/bin/jailer", "--jailer-uid", "nobody", "--jailer-gid", "-1");

        code.Should().Be(2);
        stderr.Should().Contain("jailer-uid: expected a whole number from 0 to 2147483647, got 'nobody'")
            .And.Contain("jailer-gid: expected a whole number from 0 to 2147483647, got '-1'");
    }

    [Test]
    public async Task Run_JailerIdsWithoutJailer_ExitsWith2()
    {
        var (code, _, stderr) = await RunAsync("--jailer-uid", "1000");

        code.Should().Be(2);
        stderr.Should().Contain("jailer-uid only applies with jailer-bin");
    }

    [TestCase("nobody:", "qemu-user must be \"uid:gid\" (two whole numbers) or a user name, got \"nobody:\"")]
    [TestCase("hc-no-such-user", "qemu-user user \"hc-no-such-user\" not found")]
    public async Task Run_BadQemuUser_ExitsWith2NamingTheSetting(string value, string expected)
    {
        var (code, stdout, stderr) = await RunAsync("--qemu-user", value);

        code.Should().Be(2, stderr);
        stderr.Should().Contain(expected);
        stderr.Should().NotContain("Qemu:RunAs", "the daemon names its own settings, once");
        stdout.Should().NotContain("vistarad ready");
        File.Exists(Path.Combine(_dir.FullName, "hypercore.db")).Should().BeFalse("nothing starts on a bad setting");
    }

    [Test]
    public async Task Run_BadQemuUserInToml_ExitsWith2NamingTheKey()
    {
        var config = Path.Combine(_dir.FullName, "vistarad.toml");
        await File.WriteAllTextAsync(config, "qemu-user = \"1:x\"\n");

        var (code, _, stderr) = await RunAsync("--config", config);

        code.Should().Be(2);
        stderr.Should().Contain("qemu-user must be \"uid:gid\"");
    }

    [Test]
    public async Task Run_OpsHomeRelativeOrWithoutOps_ExitsWith2()
    {
        var relative = await RunAsync("--ops-bin", "/usr/local/bin/ops", "--ops-home", "ops-home");
        var alone = await RunAsync("--ops-home", "/srv/ops");

        relative.Code.Should().Be(2);
        relative.Stderr.Should().Contain("ops-home must be an absolute path, got \"ops-home\"");
        relative.Stderr.Should().NotContain("Unikernel:OpsHome", "the daemon names its own settings, once");
        alone.Code.Should().Be(2);
        alone.Stderr.Should().Contain("ops-home only applies with ops-bin");
    }

    [Test]
    public async Task Run_EmptyBinaryInToml_ExitsWith2NamingTheKey()
    {
        var config = Path.Combine(_dir.FullName, "vistarad.toml");
        await File.WriteAllTextAsync(config, "cloud-hypervisor-bin = \"\"\n");

        var (code, _, stderr) = await RunAsync("--config", config);

        code.Should().Be(2);
        stderr.Should().Contain("cloud-hypervisor-bin must not be empty");
    }

    [Test]
    public void Toml_DriverKeys_MapToConfigurationKeys()
    {
        var values = TomlSettingsFile.Parse("""
            firecracker-bin = "/opt/fc/firecracker"
            jailer-bin = "/opt/fc/jailer"
            jailer-uid = 1001
            jailer-gid = 1002
            cloud-hypervisor-bin = "/opt/ch/cloud-hypervisor"
            ops-bin = "/opt/ops/ops"
            ops-home = "/srv/ops"
            unikernel-qemu-bin = "/opt/qemu/bin/qemu-system-x86_64"
            qemu-user = "65534:65534"
            """, "test.toml");

        values.Should().BeEquivalentTo(new Dictionary<string, string?>
        {
            ["Firecracker:BinaryPath"] = "/opt/fc/firecracker",
            ["Firecracker:Jailer:BinaryPath"] = "/opt/fc/jailer",
            ["Firecracker:Jailer:Uid"] = "1001",
            ["Firecracker:Jailer:Gid"] = "1002",
            ["CloudHypervisor:BinaryPath"] = "/opt/ch/cloud-hypervisor",
            ["Unikernel:OpsPath"] = "/opt/ops/ops",
            ["Unikernel:OpsHome"] = "/srv/ops",
            ["Unikernel:QemuPath"] = "/opt/qemu/bin/qemu-system-x86_64",
            ["Qemu:RunAs"] = "65534:65534",
        });
    }

    [Test]
    public async Task Build_GivenSettings_ReachTheDriverOptions()
    {
        await using var app = Build(new Dictionary<string, string?>
        {
            ["Firecracker:BinaryPath"] = "/opt/fc/firecracker",
            ["Firecracker:Jailer:BinaryPath"] = "/opt/fc/jailer",
            ["Firecracker:Jailer:Uid"] = "1001",
            ["Firecracker:Jailer:Gid"] = "1002",
            ["CloudHypervisor:BinaryPath"] = "/opt/ch/cloud-hypervisor",
            ["Unikernel:OpsPath"] = "/opt/ops/ops",
            ["Unikernel:OpsHome"] = "/srv/ops",
            ["Unikernel:QemuPath"] = "/opt/qemu/bin/qemu-system-x86_64",
            ["Qemu:BinaryPath"] = "/opt/qemu/bin/qemu-system-x86_64",
            ["Qemu:RunAs"] = "nobody",
        });

        var qemu = app.Services.GetRequiredService<IOptions<Hypercore.Drivers.Qemu.QemuOptions>>().Value;
        (qemu.BinaryPath, qemu.RunAs).Should().Be(("/opt/qemu/bin/qemu-system-x86_64", "nobody"));
        var fc = app.Services.GetRequiredService<IOptions<FirecrackerOptions>>().Value;
        fc.BinaryPath.Should().Be("/opt/fc/firecracker");
        fc.Jailer.Enabled.Should().BeTrue();
        fc.Jailer.BinaryPath.Should().Be("/opt/fc/jailer");
        (fc.Jailer.Uid, fc.Jailer.Gid).Should().Be((1001, 1002));
        fc.RuntimeDirectory.Should().Be(Path.Combine(_dir.FullName, "run", "firecracker"));
        app.Services.GetRequiredService<IOptions<CloudHypervisorOptions>>().Value.BinaryPath.Should().Be("/opt/ch/cloud-hypervisor");
        var uk = app.Services.GetRequiredService<IOptions<UnikernelOptions>>().Value;
        (uk.OpsPath, uk.OpsHome, uk.QemuPath).Should().Be(("/opt/ops/ops", "/srv/ops", "/opt/qemu/bin/qemu-system-x86_64"));
    }

    [Test]
    public async Task Build_NoDriverSettings_KeepsTheDriverDefaults()
    {
        await using var app = Build([]);

        app.Services.GetRequiredService<IOptions<Hypercore.Drivers.Qemu.QemuOptions>>().Value.RunAs.Should().BeNull("QEMU runs as root unless qemu-user is set");
        var fc = app.Services.GetRequiredService<IOptions<FirecrackerOptions>>().Value;
        fc.BinaryPath.Should().Be("firecracker");
        fc.Jailer.Enabled.Should().BeFalse();
        app.Services.GetRequiredService<IOptions<CloudHypervisorOptions>>().Value.BinaryPath.Should().Be("cloud-hypervisor");
        var uk = app.Services.GetRequiredService<IOptions<UnikernelOptions>>().Value;
        (uk.OpsPath, uk.OpsHome, uk.QemuPath).Should().Be(("", "", "qemu-system-x86_64"));
    }

    private Microsoft.AspNetCore.Builder.WebApplication Build(Dictionary<string, string?> settings)
    {
        settings["Daemon:StateDirectory"] = _dir.FullName;
        settings["Daemon:GrpcEndpoint"] = "127.0.0.1:0";
        settings["Daemon:HttpEndpoint"] = "127.0.0.1:0";
        return DaemonHost.Build(settings, new BoundEndpoints());
    }
}

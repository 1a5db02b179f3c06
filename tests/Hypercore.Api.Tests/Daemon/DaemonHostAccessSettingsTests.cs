using System.Runtime.Versioning;
using Hypercore.Daemon.Cli;
using Hypercore.Daemon.Configuration;
using Hypercore.Daemon.Hosting;
using Hypercore.HostAccess;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// The host-access settings (--kernel-roots, --volume-roots, --allowed-block-devices, --max-scratch-disk-mib,
/// --min-free-disk-mib): bad values stop the daemon with exit 2 naming the setting; good ones reach the one policy.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class DaemonHostAccessSettingsTests
{
    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-host-access-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    private async Task<(int Code, string Stderr)> RunAsync(params string[] flags)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        string[] args = ["run", "--state-dir", _dir.FullName, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", .. flags];
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var code = await DaemonCli.RunAsync(args, stdout, stderr, stop.Token);
        stdout.ToString().Should().NotContain("vistarad ready");
        return (code, stderr.ToString());
    }

    [TestCase("--kernel-roots", "kernels", "kernel-roots: \"kernels\" must be an absolute path without \"..\"")]
    [TestCase("--volume-roots", "/srv/vols,/srv/../etc", "volume-roots: \"/srv/../etc\" must be an absolute path without \"..\"")]
    [TestCase("--volume-roots", "/", "volume-roots: \"/\" would hand every file on the node to callers")]
    [TestCase("--allowed-block-devices", "sda", "allowed-block-devices: \"sda\" must be an absolute path")]
    [TestCase("--max-scratch-disk-mib", "lots", "max-scratch-disk-mib: \"lots\" must be a whole number of MiB")]
    [TestCase("--min-free-disk-mib", "5.5", "min-free-disk-mib: \"5.5\" must be a whole number of MiB")]
    public async Task Run_BadHostAccessSetting_ExitsWith2NamingIt(string flag, string value, string expected)
    {
        var (code, stderr) = await RunAsync(flag, value);

        code.Should().Be(2, stderr);
        stderr.Should().Contain(expected);
        File.Exists(Path.Combine(_dir.FullName, "hypercore.db")).Should().BeFalse("nothing starts on a bad setting");
    }

    [Test]
    public void Toml_HostAccessKeys_MapToConfigurationKeys()
    {
        var values = TomlSettingsFile.Parse("""
            kernel-roots = "/srv/kernels,/opt/kernels"
            volume-roots = "/srv/volumes"
            allowed-block-devices = "/dev/vg0/data"
            max-scratch-disk-mib = 2048
            min-free-disk-mib = 512
            """, "test.toml");

        values.Should().BeEquivalentTo(new Dictionary<string, string?>
        {
            ["Daemon:KernelRoots"] = "/srv/kernels,/opt/kernels",
            ["Daemon:VolumeRoots"] = "/srv/volumes",
            ["Daemon:AllowedBlockDevices"] = "/dev/vg0/data",
            ["Daemon:MaxScratchDiskMiB"] = "2048",
            ["Daemon:MinFreeDiskMiB"] = "512",
        });
    }

    [Test]
    public async Task Build_Defaults_ImagesAndVolumesUnderTheStateDirectoryOnly()
    {
        await using var app = Build([]);

        var policy = app.Services.GetRequiredService<HostPathPolicy>();

        policy.Options.ImageDirectories.Should().Equal(Path.Combine(_dir.FullName, "images"));
        policy.Options.KernelRoots.Should().BeEmpty();
        policy.Options.VolumeRoots.Should().Equal(Path.Combine(_dir.FullName, "volumes"));
        policy.Options.AllowedBlockDevices.Should().BeEmpty();
        (policy.Options.MaxScratchDiskMiBPerVm, policy.Options.MinFreeDiskMiB).Should().Be((65536, 1024));
    }

    [Test]
    public async Task Build_GivenSettings_ReachThePolicy()
    {
        await using var app = Build(new Dictionary<string, string?>
        {
            ["Daemon:KernelRoots"] = "/srv/kernels, /opt/kernels",
            ["Daemon:VolumeRoots"] = "/srv/volumes",
            ["Daemon:AllowedBlockDevices"] = "/dev/vg0/data",
            ["Daemon:MaxScratchDiskMiB"] = "2048",
            ["Daemon:MinFreeDiskMiB"] = "512",
        });

        var o = app.Services.GetRequiredService<HostPathPolicy>().Options;

        o.KernelRoots.Should().Equal("/srv/kernels", "/opt/kernels");
        o.VolumeRoots.Should().Equal("/srv/volumes");
        o.AllowedBlockDevices.Should().Equal("/dev/vg0/data");
        (o.MaxScratchDiskMiBPerVm, o.MinFreeDiskMiB).Should().Be((2048, 512));
    }

    private Microsoft.AspNetCore.Builder.WebApplication Build(Dictionary<string, string?> settings)
    {
        settings["Daemon:StateDirectory"] = _dir.FullName;
        settings["Daemon:GrpcEndpoint"] = "127.0.0.1:0";
        settings["Daemon:HttpEndpoint"] = "127.0.0.1:0";
        return DaemonHost.Build(settings, new BoundEndpoints());
    }
}

using System.Runtime.Versioning;
using Hypercore.Daemon.Cli;
using Hypercore.Daemon.Configuration;
using Hypercore.Daemon.Hosting;
using Hypercore.GuestHealth;
using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>Guest health settings: probe-host-targets (off by default) and probe-tick reach the prober; a bad tick exits 2.</summary>
[SupportedOSPlatform("linux")]
public sealed class DaemonHealthSettingsTests
{
    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-health-settings-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    [Test]
    public async Task Build_NoSettings_HostTargetsRefusedAndTheProberAndItsStartStepAreThere()
    {
        await using var app = Build([]);

        var options = app.Services.GetRequiredService<IOptions<GuestHealthOptions>>().Value;
        options.AllowHostTargets.Should().BeFalse("a spec must not reach the node's own services by default");
        options.TickInterval.Should().Be(TimeSpan.FromMilliseconds(250));
        app.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<GuestHealthHost>().Should().ContainSingle();
        app.Services.GetServices<IStartStep>().OfType<GuestHealthStartStep>().Should().ContainSingle();
    }

    [Test]
    public void Toml_Keys_MapToTheHealthSection()
    {
        var values = TomlSettingsFile.Parse("""
            probe-host-targets = true
            probe-tick = "1s"
            """, "test.toml");

        values.Should().Contain("Health:AllowHostTargets", "true");
        values.Should().ContainKey("Health:TickInterval");
    }

    [Test]
    public async Task Build_Settings_ReachTheProber()
    {
        await using var app = Build(new Dictionary<string, string?> { ["Health:AllowHostTargets"] = "true", ["Health:TickInterval"] = "1s" });

        var options = app.Services.GetRequiredService<IOptions<GuestHealthOptions>>().Value;
        options.AllowHostTargets.Should().BeTrue();
        options.TickInterval.Should().Be(TimeSpan.FromSeconds(1));
    }

    [Test]
    public async Task Build_ProbeAllowedCidrs_DefaultNoneAndTheSettingReachesTheCreateCheck()
    {
        await using (var plain = Build([]))
        {
            plain.Services.GetRequiredService<IOptions<GuestHealthOptions>>().Value.AllowedCidrs.Should().BeEmpty();
        }

        var values = TomlSettingsFile.Parse("probe-allowed-cidrs = \"192.0.2.0/24\"", "test.toml");
        values.Should().Contain("Health:AllowedCidrs", "192.0.2.0/24");
        await using var app = Build(new Dictionary<string, string?> { ["Health:AllowedCidrs"] = "192.0.2.0/24" });
        var spec = new Hypercore.MicroVms.MicroVmSpec
        {
            Id = "vm1", Kernel = new Hypercore.MicroVms.KernelSpec { Image = "/k" },
            ReadinessProbe = new Hypercore.MicroVms.ProbeSpec { TcpSocket = new Hypercore.MicroVms.TcpSocketProbe(22) },
            Interfaces = [new Hypercore.MicroVms.NetworkInterfaceSpec { DeviceId = "eth0", Address = "192.0.2.9/24" }],
        };

        var policy = app.Services.GetRequiredService<ProbeTargetPolicy>();

        policy.CreateViolations(spec).Should().BeEmpty();
        policy.CreateViolations(spec with { Interfaces = [spec.Interfaces[0] with { Address = "198.51.100.9/24" }] }).Should().ContainSingle();
    }

    [Test]
    public async Task Run_ProbeAllowedCidrsNotANetwork_ExitsWith2NamingIt()
    {
        var stderr = new StringWriter();
        string[] args = ["run", "--state-dir", _dir.FullName, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", "--probe-allowed-cidrs", "10.0.0.5"];
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        var code = await DaemonCli.RunAsync(args, new StringWriter(), stderr, stop.Token);

        code.Should().Be(2, stderr.ToString());
        stderr.ToString().Should().Contain("probe-allowed-cidrs must be comma-separated networks like 10.20.0.0/16").And.Contain("\"10.0.0.5\"");
    }

    [Test]
    public async Task Run_ProbeTickNotADuration_ExitsWith2NamingIt()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        string[] args = ["run", "--state-dir", _dir.FullName, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", "--probe-tick", "often"];
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        var code = await DaemonCli.RunAsync(args, stdout, stderr, stop.Token);

        code.Should().Be(2, stderr.ToString());
        stderr.ToString().Should().Contain("probe-tick: expected a duration such as 30s, 2m or 1h30m, got 'often'");
    }

    private Microsoft.AspNetCore.Builder.WebApplication Build(Dictionary<string, string?> settings)
    {
        settings["Daemon:StateDirectory"] = _dir.FullName;
        settings["Daemon:GrpcEndpoint"] = "127.0.0.1:0";
        settings["Daemon:HttpEndpoint"] = "127.0.0.1:0";
        return DaemonHost.Build(settings, new BoundEndpoints());
    }
}

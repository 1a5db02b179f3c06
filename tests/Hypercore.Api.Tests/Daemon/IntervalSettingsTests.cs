using System.Runtime.Versioning;
using Hypercore.Consoles;
using Hypercore.Daemon.Cli;
using Hypercore.Daemon.Configuration;
using Hypercore.Daemon.Hosting;
using Hypercore.Informers;
using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// The reconciler's periodic resync, the informer's periodic relist and the console rotator's full scan are node settings
/// (`resync-interval`, `relist-interval`, `console-full-scan-interval`): before, their components read them but no flag or
/// TOML key reached them.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class IntervalSettingsTests
{
    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-interval-settings-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    [Test]
    public async Task TomlKeys_ReachTheReconcilerAndTheConsoleRotator()
    {
        var file = TomlSettingsFile.Parse("resync-interval = \"90s\"\nrelist-interval = \"2m30s\"\nconsole-full-scan-interval = \"10s\"\n", "vistarad.toml");
        var settings = new Dictionary<string, string?>(file) // Build normalizes, as the CLI path does
        {
            ["Daemon:StateDirectory"] = _dir.FullName,
            ["Daemon:GrpcEndpoint"] = "127.0.0.1:0",
            ["Daemon:HttpEndpoint"] = "127.0.0.1:0",
        };

        await using var app = DaemonHost.Build(settings, new BoundEndpoints());

        app.Services.GetRequiredService<IOptions<ReconcilerOptions>>().Value.ResyncInterval.Should().Be(TimeSpan.FromSeconds(90));
        app.Services.GetRequiredService<IOptions<InformerOptions>>().Value.ResyncInterval.Should().Be(TimeSpan.FromSeconds(150));
        app.Services.GetRequiredService<IOptions<ConsoleLogOptions>>().Value.FullScanInterval.Should().Be(TimeSpan.FromSeconds(10));
    }

    [Test]
    public async Task Defaults_AreFiveMinutesFiveMinutesAndOneMinute()
    {
        await using var app = DaemonHost.Build(new Dictionary<string, string?>
        {
            ["Daemon:StateDirectory"] = _dir.FullName,
            ["Daemon:GrpcEndpoint"] = "127.0.0.1:0",
            ["Daemon:HttpEndpoint"] = "127.0.0.1:0",
        }, new BoundEndpoints());

        app.Services.GetRequiredService<IOptions<ReconcilerOptions>>().Value.ResyncInterval.Should().Be(TimeSpan.FromMinutes(5));
        app.Services.GetRequiredService<IOptions<InformerOptions>>().Value.ResyncInterval.Should().Be(TimeSpan.FromMinutes(5));
        app.Services.GetRequiredService<IOptions<ConsoleLogOptions>>().Value.FullScanInterval.Should().Be(TimeSpan.FromMinutes(1));
    }

    [TestCase("--resync-interval", "0s", "resync-interval: expected a duration such as 30s, 2m or 1h30m, got '0s'")]
    [TestCase("--relist-interval", "-5m", "relist-interval: expected a duration such as 30s, 2m or 1h30m, got '-5m'")]
    [TestCase("--console-full-scan-interval", "often", "console-full-scan-interval: expected a duration such as 30s, 2m or 1h30m, got 'often'")]
    public async Task Flag_BadDuration_ExitsTwoNamingTheSetting(string flag, string value, string message)
    {
        var stderr = new StringWriter();

        var code = await DaemonCli.RunAsync(["run", "--state-dir", _dir.FullName, flag, value], new StringWriter(), stderr);

        code.Should().Be(2);
        stderr.ToString().Should().Contain(message);
    }
}

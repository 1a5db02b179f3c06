using System.Runtime.Versioning;
using Hypercore.Daemon.Hosting;
using Hypercore.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// The daemon watches no files: <c>WebApplication.CreateSlimBuilder</c> adds appsettings.json with reload on change, a
/// recursive inotify watch on the content root (the binary's directory) that clearing the configuration sources does
/// not stop (bench9 found it in /proc/PID/fdinfo of the shipped daemon). Counted from the kernel's side: this process's
/// inotify watches before and after the daemon's application is composed and built.
/// </summary>
[SupportedOSPlatform("linux")]
[NonParallelizable]
public sealed class DaemonFileWatchTests
{
    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-filewatch-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    [Test]
    public async Task Build_RegistersNoFileWatcher()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Daemon:StateDirectory"] = _dir.FullName,
            ["Daemon:GrpcEndpoint"] = "127.0.0.1:0",
            ["Daemon:HttpEndpoint"] = "127.0.0.1:0",
        };
        var before = ProcFs.InotifyWatches();

        await using var app = DaemonHost.Build(settings, new BoundEndpoints());

        (ProcFs.InotifyWatches() - before).Should().Be(0, "the daemon registers no file watcher on its content root");
        app.Services.GetRequiredService<IHostEnvironment>().ContentRootPath.TrimEnd('/').Should().Be(AppContext.BaseDirectory.TrimEnd('/'));
    }
}

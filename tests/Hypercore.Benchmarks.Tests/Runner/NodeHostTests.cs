using Hypercore.Benchmarks.Api;
using Hypercore.Benchmarks.Scale;
using Hypercore.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Hypercore.Benchmarks.Tests.Runner;

/// <summary>
/// The benchmark's in-process hosts take the daemon's content root (its binary's directory) and watch no files: with the
/// builders' defaults they watched the current directory recursively (appsettings.json reload), and a child run from a
/// directory holding its work directory paid an inotify event per SQLite write (running8: 9.3 % of its CPU). Counted
/// from the kernel's side: the inotify watches of this process (/proc/self/fdinfo) before and after the host starts.
/// </summary>
[NonParallelizable]
public class NodeHostTests
{
    private string _scratch = null!;

    [SetUp]
    public void SetUp() => _scratch = Directory.CreateTempSubdirectory("hcb-nodehost-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_scratch, recursive: true);

    [Test]
    public async Task InProcessNode_WatchesNoFiles()
    {
        var before = ProcFs.InotifyWatches();

        await using (var node = await InProcessNode.StartAsync(_scratch, reconciler: true, admission: true))
        {
            (ProcFs.InotifyWatches() - before).Should().Be(0, $"the node registers no file watcher (the working directory is {Environment.CurrentDirectory})");
            node.Services.GetRequiredService<IHostEnvironment>().ContentRootPath.TrimEnd('/').Should().Be(AppContext.BaseDirectory.TrimEnd('/'), "the daemon's content root (DaemonHost.Compose)");
        }
    }

    [Test]
    public async Task ReconcileScaleHost_WatchesNoFiles()
    {
        var before = ProcFs.InotifyWatches();

        using var host = ReconcileScale.Build(Path.Combine(_scratch, "hypercore.db"), reconciler: true);
        await host.StartAsync();
        try
        {
            (ProcFs.InotifyWatches() - before).Should().Be(0, $"the scale host registers no file watcher (the working directory is {Environment.CurrentDirectory})");
            host.Services.GetRequiredService<IHostEnvironment>().ContentRootPath.TrimEnd('/').Should().Be(AppContext.BaseDirectory.TrimEnd('/'));
        }
        finally
        {
            await host.StopAsync();
        }
    }
}

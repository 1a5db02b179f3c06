using Hypercore.Benchmarks.Api;
using Hypercore.Benchmarks.Scale;
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
        var before = InotifyWatches();

        await using (var node = await InProcessNode.StartAsync(_scratch, reconciler: true, admission: true))
        {
            (InotifyWatches() - before).Should().Be(0, $"the node registers no file watcher (the working directory is {Environment.CurrentDirectory})");
            node.Services.GetRequiredService<IHostEnvironment>().ContentRootPath.TrimEnd('/').Should().Be(AppContext.BaseDirectory.TrimEnd('/'), "the daemon's content root (DaemonHost.Compose)");
        }
    }

    [Test]
    public async Task ReconcileScaleHost_WatchesNoFiles()
    {
        var before = InotifyWatches();

        using var host = ReconcileScale.Build(Path.Combine(_scratch, "hypercore.db"), reconciler: true);
        await host.StartAsync();
        try
        {
            (InotifyWatches() - before).Should().Be(0, $"the scale host registers no file watcher (the working directory is {Environment.CurrentDirectory})");
            host.Services.GetRequiredService<IHostEnvironment>().ContentRootPath.TrimEnd('/').Should().Be(AppContext.BaseDirectory.TrimEnd('/'));
        }
        finally
        {
            await host.StopAsync();
        }
    }

    /// <summary>Every inotify watch of this process: one "inotify wd:" line per watched directory in the fdinfo of its inotify descriptors.</summary>
    private static int InotifyWatches()
    {
        var watches = 0;
        foreach (var fd in Directory.GetFiles("/proc/self/fdinfo"))
        {
            try
            {
                watches += File.ReadAllLines(fd).Count(l => l.StartsWith("inotify wd:", StringComparison.Ordinal));
            }
            catch (IOException)
            {
                // a descriptor closed since the listing (the listing's own, among others)
            }
        }

        return watches;
    }
}

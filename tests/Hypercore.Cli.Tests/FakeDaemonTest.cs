using Hypercore.Cli.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Cli.Tests;

/// <summary>Each test gets its own fake daemon on a fresh port, a fake clock and a CLI harness pointed at it.</summary>
public abstract class FakeDaemonTest
{
    protected static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    protected FakeTimeProvider Time { get; private set; } = null!;

    protected FakeDaemon Daemon { get; private set; } = null!;

    protected FakeVmService Service => Daemon.Service;

    protected CliHarness Harness { get; private set; } = null!;

    private readonly List<string> _files = [];

    [SetUp]
    public async Task StartDaemon()
    {
        Time = new FakeTimeProvider(new DateTimeOffset(2025, 6, 1, 12, 0, 0, TimeSpan.Zero));
        Daemon = await FakeDaemon.StartAsync(Time);
        Harness = new CliHarness(Time);
    }

    [TearDown]
    public async Task StopDaemon()
    {
        try
        {
            await Daemon.DisposeAsync();
        }
        finally
        {
            foreach (var file in _files)
            {
                File.Delete(file);
            }
        }
    }

    /// <summary>Runs `vis --host &lt;fake&gt; args...` in-process.</summary>
    protected Task<CliResult> Vis(params string[] args) => Harness.RunAsync(["--host", Daemon.Host, .. args]);

    protected (Task<int> Exit, SyncWriter Out, SyncWriter Err) StartVis(params string[] args) => Harness.Start(["--host", Daemon.Host, .. args]);

    /// <summary>A temp file removed in TearDown.</summary>
    protected string WriteFile(string extension, string content)
    {
        var path = Path.Combine(Path.GetTempPath(), $"vis-test-{Guid.NewGuid():N}{extension}");
        File.WriteAllText(path, content);
        _files.Add(path);
        return path;
    }

    protected static async Task Eventually(Func<bool> condition, string what)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (!condition())
        {
            if (cts.IsCancellationRequested)
            {
                Assert.Fail($"timed out waiting for {what}");
            }

            await Task.Delay(20);
        }
    }

    protected static async Task<int> Finished(Task<int> exit)
    {
        var done = await Task.WhenAny(exit, Task.Delay(Patience));
        done.Should().BeSameAs(exit, "the command should have finished");
        return await exit;
    }
}

using System.Runtime.Versioning;
using Hypercore.Daemon.Hosting;
using Hypercore.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>The one collection after the daemon is ready (issue 15: idle RSS): once, after its delay, never on the caller's path.</summary>
[SupportedOSPlatform("linux")]
public sealed class StartupMemoryTrimTests
{
    // NUnit shares one fixture instance between its tests: fresh state for each.
    private FakeTimeProvider _time = null!;
    private TimeSpan _cpu;
    private int _collections;

    [SetUp]
    public void SetUp()
    {
        _time = new FakeTimeProvider();
        _cpu = TimeSpan.FromMilliseconds(100);
        _collections = 0;
    }

    private StartupMemoryTrim NewTrim() => new(_time, NullLogger.Instance, () => _collections++, () => _cpu);

    /// <summary>One check interval in which the process used <paramref name="cpuMs"/> of CPU.</summary>
    private void Tick(double cpuMs)
    {
        _cpu += TimeSpan.FromMilliseconds(cpuMs);
        _time.Advance(StartupMemoryTrim.Delay);
    }

    [Test]
    public void Schedule_BeforeTheDelay_DoesNotCollect()
    {
        using var trim = NewTrim();

        _time.Advance(StartupMemoryTrim.Delay - TimeSpan.FromMilliseconds(1));

        _collections.Should().Be(0, "scheduling returns at once; the collection waits for the start burst to end");
        trim.Runs.Should().Be(0);
    }

    [Test]
    public void Schedule_IdleAfterTheDelay_CollectsExactlyOnce()
    {
        using var trim = NewTrim();

        Tick(cpuMs: 5);
        for (var i = 0; i < 100; i++)
        {
            Tick(cpuMs: 0);
        }

        _collections.Should().Be(1, "a one-off after start, not a periodic collection");
        trim.Runs.Should().Be(1);
    }

    [Test]
    public void Schedule_BusyThenIdle_CollectsOnlyOnceIdle()
    {
        using var trim = NewTrim();

        for (var i = 0; i < 5; i++)
        {
            Tick(cpuMs: 900); // a resync or a burst of calls: a blocking compaction would pause it
        }

        _collections.Should().Be(0);
        Tick(cpuMs: 20);
        _collections.Should().Be(1);
    }

    [Test]
    public void Schedule_BusyForEveryCheck_GivesUpAndNeverCollects()
    {
        using var trim = NewTrim();

        for (var i = 0; i < StartupMemoryTrim.MaxChecks; i++)
        {
            Tick(cpuMs: 500);
        }

        Tick(cpuMs: 0);
        Tick(cpuMs: 0);

        _collections.Should().Be(0, "a daemon busy for its whole first minute is not paused later either");
        trim.Runs.Should().Be(0);
    }

    [Test]
    public void Dispose_BeforeTheDelay_NeverCollects()
    {
        var trim = NewTrim();

        trim.Dispose();
        for (var i = 0; i < 10; i++)
        {
            Tick(cpuMs: 0);
        }

        _collections.Should().Be(0, "a daemon stopping within its first second does not collect on its way out");
    }

    [Test]
    public void Schedule_RealCollection_RunsAFullGarbageCollection()
    {
        using var trim = new StartupMemoryTrim(_time, NullLogger.Instance, StartupMemoryTrim.Collect, () => _cpu);
        var before = GC.CollectionCount(GC.MaxGeneration);

        Tick(cpuMs: 0);

        GC.CollectionCount(GC.MaxGeneration).Should().BeGreaterThan(before, "the trim is a full (gen2) collection");
        trim.Runs.Should().Be(1);
    }
}

/// <summary>The real vistarad: the trim runs once after ready, logged, and the daemon keeps serving.</summary>
[NonParallelizable]
[SupportedOSPlatform("linux")]
public sealed class StartupMemoryTrimProcessTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    [Test]
    public async Task Run_AfterReady_TrimsMemoryOnceAndKeepsServing()
    {
        var dir = Directory.CreateTempSubdirectory("hypercore-rss-trim-");
        try
        {
            await using var daemon = DaemonProcess.Start(DaemonProcessTests.Vistarad, "run", "--state-dir", Path.Combine(dir.FullName, "state"),
                "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", "--qemu-accel", "tcg");
            var (_, http) = await daemon.WaitReadyAsync(Patience);

            var deadline = DateTime.UtcNow + Patience;
            while (!daemon.Stderr.Contains("after-start memory trim", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }

            // Well past the delay again: a second trim (a periodic one) would show by now.
            await Task.Delay(StartupMemoryTrim.Delay * 3);
            using var client = new HttpClient { BaseAddress = new Uri(http) };
            var json = await client.GetStringAsync("/v1/microvms");
            daemon.Signal("TERM");
            var code = await daemon.WaitForExitAsync(Patience);

            CountOf(daemon.Stderr, "after-start memory trim").Should().Be(1, daemon.Stderr);
            daemon.Stderr.Should().MatchRegex(@"after-start memory trim: full compacting GC, [\d.]+ ms process CPU; RSS [\d.]+ → [\d.]+ MB");
            json.Should().StartWith("{");
            code.Should().Be(0, daemon.Stderr);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static int CountOf(string text, string what)
    {
        var count = 0;
        for (var at = text.IndexOf(what, StringComparison.Ordinal); at >= 0; at = text.IndexOf(what, at + what.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}

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
    [Test]
    public void Schedule_BeforeTheDelay_DoesNotCollect()
    {
        var time = new FakeTimeProvider();
        var collections = 0;
        using var trim = new StartupMemoryTrim(time, NullLogger.Instance, () => collections++);

        time.Advance(StartupMemoryTrim.Delay - TimeSpan.FromMilliseconds(1));

        collections.Should().Be(0, "scheduling returns at once; the collection waits for the start burst to end");
        trim.Runs.Should().Be(0);
    }

    [Test]
    public void Schedule_AfterTheDelay_CollectsExactlyOnce()
    {
        var time = new FakeTimeProvider();
        var collections = 0;
        using var trim = new StartupMemoryTrim(time, NullLogger.Instance, () => collections++);

        time.Advance(StartupMemoryTrim.Delay);
        time.Advance(TimeSpan.FromHours(24));

        collections.Should().Be(1, "a one-off after start, not a periodic collection");
        trim.Runs.Should().Be(1);
    }

    [Test]
    public void Dispose_BeforeTheDelay_NeverCollects()
    {
        var time = new FakeTimeProvider();
        var collections = 0;
        var trim = new StartupMemoryTrim(time, NullLogger.Instance, () => collections++);

        trim.Dispose();
        time.Advance(TimeSpan.FromHours(1));

        collections.Should().Be(0, "a daemon stopping within its first second does not collect on its way out");
    }

    [Test]
    public void Schedule_RealCollection_RunsAFullGarbageCollection()
    {
        var time = new FakeTimeProvider();
        using var trim = StartupMemoryTrim.Schedule(time, NullLogger.Instance);
        var before = GC.CollectionCount(GC.MaxGeneration);

        time.Advance(StartupMemoryTrim.Delay);

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

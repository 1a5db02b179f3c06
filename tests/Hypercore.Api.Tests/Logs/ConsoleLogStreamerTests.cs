using System.Text;
using Hypercore.Api.Logs;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Api.Tests.Logs;

public sealed class ConsoleLogStreamerTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-logs-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [TestCase("", 3, "")]
    [TestCase("a\nb\nc\n", 0, "a\nb\nc\n")]
    [TestCase("a\nb\nc\n", 1, "c\n")]
    [TestCase("a\nb\nc\n", 2, "b\nc\n")]
    [TestCase("a\nb\nc\n", 3, "a\nb\nc\n")]
    [TestCase("a\nb\nc\n", 10, "a\nb\nc\n")]
    [TestCase("a\nb\nc", 1, "c")]
    [TestCase("a\nb\nc", 2, "b\nc")]
    [TestCase("a\n\n\n", 2, "\n\n")]
    public async Task FindTailOffset_ReturnsStartOfLastLines(string content, int lines, string expected)
    {
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(content));

        var offset = await ConsoleLogStreamer.FindTailOffsetAsync(stream, lines, CancellationToken.None);

        content[(int)offset..].Should().Be(expected);
    }

    [Test]
    public async Task FindTailOffset_LinesAcrossBlockBoundaries_AreCountedOnce()
    {
        var content = string.Concat(Enumerable.Range(0, 3000).Select(i => $"line-{i:D5}\n")); // ~33 KB, several 8 KiB blocks
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(content));

        var offset = await ConsoleLogStreamer.FindTailOffsetAsync(stream, 1500, CancellationToken.None);

        content[(int)offset..].Should().StartWith("line-01500\n").And.EndWith("line-02999\n");
    }

    [Test]
    public async Task Stream_Follow_PollsOnTheTimeProviderAndSendsAppendedBytes()
    {
        var path = Path.Combine(_dir, "console.log");
        await File.WriteAllTextAsync(path, "boot\n");
        var time = new WatchedTimeProvider();
        var streamer = new ConsoleLogStreamer(time, new StaticOptions(new HypercoreApiOptions { LogPollInterval = TimeSpan.FromSeconds(1) }));
        var received = new StringBuilder();
        var chunks = 0;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var stop = new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cts.Token, stop.Token);

        var streaming = streamer.StreamAsync(path, 0, follow: true, chunk =>
        {
            lock (received)
            {
                received.Append(Encoding.UTF8.GetString(chunk.Span));
                chunks++;
            }

            return Task.CompletedTask;
        }, linked.Token);

        await WaitUntilAsync(() => Text() == "boot\n", cts.Token);
        await time.TimerCreated.WaitAsync(cts.Token); // the streamer reached the end and now waits for its next poll
        await File.AppendAllTextAsync(path, "ready\n");
        await Task.Delay(200, cts.Token);
        Text().Should().Be("boot\n", "nothing is read before the poll interval passes on the injected clock");

        time.Advance(TimeSpan.FromSeconds(1));
        await WaitUntilAsync(() => Text() == "boot\nready\n", cts.Token);

        await time.TimerCreated.WaitAsync(cts.Token);
        await File.WriteAllTextAsync(path, "new\n"); // truncated and rewritten (a restarted VM)
        time.Advance(TimeSpan.FromSeconds(1));

        // A shrink without a rotation is believed on the second poll (a rotation truncates just before renaming .1).
        await time.TimerCreated.WaitAsync(cts.Token);
        time.Advance(TimeSpan.FromSeconds(1));
        await WaitUntilAsync(() => Text() == "boot\nready\nnew\n", cts.Token);

        await stop.CancelAsync();
        var act = async () => await streaming;
        await act.Should().ThrowAsync<OperationCanceledException>();

        string Text()
        {
            lock (received)
            {
                return received.ToString();
            }
        }
    }

    [Test]
    public async Task Stream_Follow_AcrossCopyTruncateRotation_SendsEveryByteOnceInOrder()
    {
        var path = Path.Combine(_dir, "console.log");
        await File.WriteAllTextAsync(path, "a\nb\n");
        var time = new WatchedTimeProvider();
        var streamer = new ConsoleLogStreamer(time, new StaticOptions(new HypercoreApiOptions { LogPollInterval = TimeSpan.FromSeconds(1) }));
        var received = new StringBuilder();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cts.Token);
        var streaming = streamer.StreamAsync(path, 0, follow: true, chunk =>
        {
            lock (received)
            {
                received.Append(Encoding.UTF8.GetString(chunk.Span));
            }

            return Task.CompletedTask;
        }, stop.Token);
        await WaitUntilAsync(() => Text() == "a\nb\n", cts.Token);
        await time.TimerCreated.WaitAsync(cts.Token);

        await File.AppendAllTextAsync(path, "c\n"); // written, not yet read, then rotated away
        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4).Should().Be(6);
        await File.AppendAllTextAsync(path, "d\n");
        time.Advance(TimeSpan.FromSeconds(1));

        await WaitUntilAsync(() => Text() == "a\nb\nc\nd\n", cts.Token);
        File.ReadAllText(path + ".1").Should().Be("a\nb\nc\n");
        await stop.CancelAsync();
        await FluentActions.Awaiting(async () => await streaming).Should().ThrowAsync<OperationCanceledException>();

        string Text()
        {
            lock (received)
            {
                return received.ToString();
            }
        }
    }

    [TestCase(0, "o1\no2\nn1\nn2\n")]
    [TestCase(1, "n2\n")]
    [TestCase(2, "n1\nn2\n")]
    [TestCase(3, "o2\nn1\nn2\n")]
    [TestCase(9, "o1\no2\nn1\nn2\n")]
    public async Task Stream_WithRotatedPart_TailSpansBothParts(int tail, string expected)
    {
        var path = Path.Combine(_dir, "console.log");
        await File.WriteAllTextAsync(path + ".1", "o1\no2\n");
        await File.WriteAllTextAsync(path, "n1\nn2\n");
        var streamer = new ConsoleLogStreamer(TimeProvider.System, new StaticOptions(new HypercoreApiOptions()));
        var received = new StringBuilder();

        await streamer.StreamAsync(path, tail, follow: false, chunk =>
        {
            received.Append(Encoding.UTF8.GetString(chunk.Span));
            return Task.CompletedTask;
        }, CancellationToken.None);

        received.ToString().Should().Be(expected);
    }

    [Test]
    public void RotateIfOver_UnderCap_LeavesTheFileAlone()
    {
        var path = Path.Combine(_dir, "console.log");
        File.WriteAllText(path, "12345");

        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 5).Should().Be(0);

        File.ReadAllText(path).Should().Be("12345");
        File.Exists(path + ".1").Should().BeFalse();
    }

    [Test]
    public void RotateIfOver_OverCapTwice_KeepsOneRotatedPartHoldingTheLatest()
    {
        var path = Path.Combine(_dir, "console.log");
        File.WriteAllText(path, "first-part");
        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4).Should().Be(10);
        File.AppendAllText(path, "second");

        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4).Should().Be(6);

        File.ReadAllText(path + ".1").Should().Be("second");
        new FileInfo(path).Length.Should().Be(0);
        Directory.GetFiles(_dir).Select(Path.GetFileName).Should().BeEquivalentTo("console.log", "console.log.1");
    }

    [Test]
    public void RotateIfOver_PlantedTempSymlink_IsReplacedNotWrittenThrough()
    {
        var target = Path.Combine(_dir, "elsewhere");
        File.WriteAllText(target, "keep");
        var path = Path.Combine(_dir, "console.log");
        File.WriteAllText(path, "guest-output");
        File.CreateSymbolicLink(path + ".rotating", target);

        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4).Should().Be(12);

        File.ReadAllText(target).Should().Be("keep");
        File.ReadAllText(path + ".1").Should().Be("guest-output");
        new FileInfo(path + ".1").LinkTarget.Should().BeNull();
    }

    [Test]
    public void RotateIfOver_Symlink_IsNotFollowed()
    {
        var target = Path.Combine(_dir, "elsewhere");
        File.WriteAllText(target, new string('x', 100));
        var path = Path.Combine(_dir, "console.log");
        File.CreateSymbolicLink(path, target);

        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4).Should().Be(0);

        File.ReadAllText(target).Should().HaveLength(100);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, CancellationToken ct)
    {
        while (!condition())
        {
            await Task.Delay(10, ct);
        }
    }

    /// <summary>A fake clock that says when someone starts waiting on it.</summary>
    private sealed class WatchedTimeProvider : FakeTimeProvider
    {
        public SemaphoreSlim TimerCreated { get; } = new(0);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            var timer = base.CreateTimer(callback, state, dueTime, period);
            TimerCreated.Release();
            return timer;
        }
    }

    private sealed class StaticOptions(HypercoreApiOptions value) : IOptionsMonitor<HypercoreApiOptions>
    {
        public HypercoreApiOptions CurrentValue => value;

        public HypercoreApiOptions Get(string? name) => value;

        public IDisposable? OnChange(Action<HypercoreApiOptions, string?> listener) => null;
    }
}

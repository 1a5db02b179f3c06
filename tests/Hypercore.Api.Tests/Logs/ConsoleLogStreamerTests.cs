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
        var received = new Received();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var stop = new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cts.Token, stop.Token);

        var streaming = Follow(path, time, received, linked.Token);

        await WaitUntilAsync(() => received.Text() == "boot\n", cts.Token);
        await time.TimerCreated.WaitAsync(cts.Token); // the streamer reached the end and now waits for its next poll
        await File.AppendAllTextAsync(path, "ready\n");
        await Task.Delay(200, cts.Token);
        received.Text().Should().Be("boot\n", "nothing is read before the poll interval passes on the injected clock");

        time.Advance(TimeSpan.FromSeconds(1));
        await WaitUntilAsync(() => received.Text() == "boot\nready\n", cts.Token);

        await time.TimerCreated.WaitAsync(cts.Token);
        await File.WriteAllTextAsync(path, "new\n"); // truncated and rewritten (a restarted VM)
        time.Advance(TimeSpan.FromSeconds(1));

        // A shrink without a rotation is believed on the first poll: reads hold the rotation gate, so a rotation is
        // never seen half done (truncated, .1 not renamed yet).
        await WaitUntilAsync(() => received.Text() == "boot\nready\nnew\n", cts.Token);

        await stop.CancelAsync();
        var act = async () => await streaming;
        await act.Should().ThrowAsync<OperationCanceledException>();
    }

    [Test]
    public async Task Stream_Follow_AcrossCopyTruncateRotation_SendsEveryByteOnceInOrder()
    {
        var path = Path.Combine(_dir, "console.log");
        await File.WriteAllTextAsync(path, "a\nb\n");
        var time = new WatchedTimeProvider();
        var received = new Received();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cts.Token);
        var streaming = Follow(path, time, received, stop.Token);
        await WaitUntilAsync(() => received.Text() == "a\nb\n", cts.Token);
        await time.TimerCreated.WaitAsync(cts.Token);

        await File.AppendAllTextAsync(path, "c\n"); // written, not yet read, then rotated away
        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4).Should().Be(6);
        await File.AppendAllTextAsync(path, "d\n");
        time.Advance(TimeSpan.FromSeconds(1));

        await WaitUntilAsync(() => received.Text() == "a\nb\nc\nd\n", cts.Token);
        File.ReadAllText(path + ".1").Should().Be("a\nb\nc\n");
        await stop.CancelAsync();
        await FluentActions.Awaiting(async () => await streaming).Should().ThrowAsync<OperationCanceledException>();
    }

    [Test]
    public async Task Stream_Follow_RotatedPartReplacedByALink_EndsTheStreamWithoutAByteOfItsTarget()
    {
        // s26 review: the streamer opened .1 through a link. The VM's directory may belong to the VMM's user, and the
        // daemon reads as root: a planted console.log.1 -> /etc/shadow would have been sent to the caller.
        var path = Path.Combine(_dir, "console.log");
        await File.WriteAllTextAsync(path, "a\nb\n");
        var time = new WatchedTimeProvider();
        var received = new Received();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var streaming = Follow(path, time, received, cts.Token);
        await WaitUntilAsync(() => received.Text() == "a\nb\n", cts.Token);
        await time.TimerCreated.WaitAsync(cts.Token);

        await File.AppendAllTextAsync(path, "c\n");
        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4).Should().Be(6);
        var secret = Path.Combine(_dir, "shadow");
        await File.WriteAllTextAsync(secret, "root:HOST-SECRET\n");
        File.Delete(path + ".1");
        File.CreateSymbolicLink(path + ".1", secret);
        time.Advance(TimeSpan.FromSeconds(1));

        (await FluentActions.Awaiting(async () => await streaming).Should().ThrowAsync<Hypercore.HostAccess.NotAPlainFileException>())
            .WithMessage($"{path}.1 is a symbolic link, not a plain file*");
        received.Text().Should().Be("a\nb\n");
    }

    [Test]
    public async Task Stream_Follow_RotatedWhileTheClientHoldsAChunk_NeverReadsTheNewPartAtTheOldOffset()
    {
        // CI of af81fa0: `vis logs -f` printed a flood's lines out of order. The streamer was waiting on its client
        // with the first chunk sent; meanwhile the log was rotated and the guest wrote more than the streamer's offset
        // into the truncated log; the streamer went on reading that at its old offset, then read the rest of the old
        // part from .1 and printed older lines after newer ones.
        var path = Path.Combine(_dir, "console.log");
        var old = Lines("old", 0, 40); // 40 lines of 16 bytes: several 512-byte chunks
        await File.WriteAllTextAsync(path, old);
        await using var client = await HeldBackClient.StartAsync(path);

        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4).Should().Be(old.Length);
        var fresh = Lines("new", 0, 100); // longer than the old part: the old offsets all hold new bytes now
        await File.AppendAllTextAsync(path, fresh);

        (await client.ReleaseAndPollAsync()).Should().Be(old + fresh, "every line once, the old part's before the new part's");
    }

    [Test]
    public async Task Stream_Follow_RotatedTwiceWhileTheClientHoldsAChunk_SendsTheLaterPartFromItsStart()
    {
        // Two rotations while the client held the first chunk: .1 is then the part written between them, all of it new
        // to the streamer; the rest of the first part is gone. Reading .1 at the first part's offset would skip the
        // start of the later part and join what comes before to the middle of a line (CI of f3fe14e, in ConsoleTail).
        var path = Path.Combine(_dir, "console.log");
        var old = Lines("old", 0, 40);
        await File.WriteAllTextAsync(path, old);
        await using var client = await HeldBackClient.StartAsync(path);

        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4).Should().Be(old.Length);
        var middle = Lines("mid", 0, 50);
        await File.AppendAllTextAsync(path, middle);
        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4).Should().Be(middle.Length);
        var fresh = Lines("new", 0, 10);
        await File.AppendAllTextAsync(path, fresh);

        (await client.ReleaseAndPollAsync()).Should().Be(old[..512] + middle + fresh, "the first chunk, then the later part whole, then the current one");
    }

    [Test]
    public async Task Stream_Follow_WhileAWriterAndTheRotatorRace_LinesOnlyRiseAndNoneRepeat()
    {
        // A writer appends numbered lines as fast as it can, a rotator copy-truncates every few milliseconds, and a
        // follower reads with a 1 ms poll and a small chunk: whatever interleaving the threads take, what the follower
        // sends rises strictly (lines are lost only between a rotation's copy and its truncation).
        var path = Path.Combine(_dir, "console.log");
        await File.WriteAllTextAsync(path, "");
        var streamer = new ConsoleLogStreamer(TimeProvider.System, new StaticOptions(new HypercoreApiOptions { LogPollInterval = TimeSpan.FromMilliseconds(1), LogChunkBytes = 512 }));
        var received = new Received();
        using var stop = new CancellationTokenSource();
        var random = new Random(7);
        var streaming = streamer.StreamAsync(path, 0, follow: true, async chunk =>
        {
            received.Add(chunk);

            if (random.Next(4) == 0)
            {
                await Task.Delay(2); // a client that reads slowly now and then
            }
        }, stop.Token);

        // The writer is a shell appending with `>>` (O_APPEND, one write per line), as the hypervisors write their consoles.
        using var writer = System.Diagnostics.Process.Start("sh", ["-c", $"i=0; while :; do i=$((i+1)); printf 'line-%08d\\n' $i; done >> '{path}'"])!;
        var rotations = 0;
        var rotating = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                rotations += Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 16 * 1024) > 0 ? 1 : 0;
                await Task.Delay(3);
            }
        });

        try
        {
            await Task.Delay(TimeSpan.FromSeconds(3));
        }
        finally
        {
            writer.Kill();
            await writer.WaitForExitAsync();
            await stop.CancelAsync();
            await rotating;
        }

        await FluentActions.Awaiting(async () => await streaming).Should().ThrowAsync<OperationCanceledException>();

        var text = received.Text();

        var numbers = System.Text.RegularExpressions.Regex.Matches(text, @"line-(\d{8})\n").Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        rotations.Should().BeGreaterThan(20, "the rotator raced the follower many times");
        numbers.Should().HaveCountGreaterThan(1000);
        numbers.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems("a rotation never replays output or sends it out of order");
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
    public void RotationCount_CountsEachRotation_AndIsDroppedOnceTheVmDirectoryIsGone()
    {
        var vm = Directory.CreateDirectory(Path.Combine(_dir, "vm-" + Guid.NewGuid().ToString("N"))).FullName;
        var path = Path.Combine(vm, "console.log");
        File.WriteAllText(path, "first-part");
        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4);
        File.AppendAllText(path, "second");
        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4);
        Hypercore.Consoles.ConsoleLogFiles.RotateIfOver(path, 4).Should().Be(0, "empty now");

        Hypercore.Consoles.ConsoleLogFiles.RotationCount(path).Should().Be(2);
        Hypercore.Consoles.ConsoleLogFiles.RotationCount(Path.Combine("/elsewhere", Path.GetFileName(vm), "console.log"))
            .Should().Be(2, "counted by the VM directory's name, whatever root the caller was given");
        Hypercore.Consoles.ConsoleLogFiles.ForgetRemovedLogs();
        Hypercore.Consoles.ConsoleLogFiles.RotationCount(path).Should().Be(2, "the VM directory is still there");

        Directory.Delete(vm, recursive: true);
        Hypercore.Consoles.ConsoleLogFiles.ForgetRemovedLogs();
        Hypercore.Consoles.ConsoleLogFiles.RotationCount(path).Should().Be(0);
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

    /// <summary>Lines "{prefix}-{n:D11}\n" (16 bytes each) for n in [from, from + count).</summary>
    private static string Lines(string prefix, int from, int count) =>
        string.Concat(Enumerable.Range(from, count).Select(i => $"{prefix}-{i:D11}\n"));

    private static async Task WaitUntilAsync(Func<bool> condition, CancellationToken ct)
    {
        while (!condition())
        {
            await Task.Delay(10, ct);
        }
    }

    /// <summary>A follower of <paramref name="path"/> polling every second on <paramref name="time"/>, from the start.</summary>
    private static Task Follow(string path, TimeProvider time, Received received, CancellationToken ct) =>
        new ConsoleLogStreamer(time, new StaticOptions(new HypercoreApiOptions { LogPollInterval = TimeSpan.FromSeconds(1) }))
            .StreamAsync(path, 0, follow: true, chunk =>
            {
                received.Add(chunk);
                return Task.CompletedTask;
            }, ct);

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

    /// <summary>
    /// A follower (512-byte chunks, 1 s polls on a fake clock) whose client holds on to the first chunk until
    /// <see cref="ReleaseAndPollAsync"/>: whatever the test does to the log meanwhile happens while the streamer waits.
    /// </summary>
    private sealed class HeldBackClient : IAsyncDisposable
    {
        private readonly WatchedTimeProvider _time = new();
        private readonly Received _received = new();
        private readonly TaskCompletionSource _firstChunkSent = new();
        private readonly TaskCompletionSource _clientReads = new();
        private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(60));
        private Task _streaming = Task.CompletedTask;

        public static async Task<HeldBackClient> StartAsync(string path)
        {
            var client = new HeldBackClient();
            var streamer = new ConsoleLogStreamer(client._time, new StaticOptions(new HypercoreApiOptions { LogPollInterval = TimeSpan.FromSeconds(1), LogChunkBytes = 512 }));
            client._streaming = streamer.StreamAsync(path, 0, follow: true, async chunk =>
            {
                client._received.Add(chunk);
                client._firstChunkSent.TrySetResult();
                await client._clientReads.Task.WaitAsync(client._timeout.Token);
            }, client._timeout.Token);
            await client._firstChunkSent.Task.WaitAsync(client._timeout.Token);
            return client;
        }

        /// <summary>Lets the client read, waits for the streamer to reach the end and poll once more; returns what it sent.</summary>
        public async Task<string> ReleaseAndPollAsync()
        {
            _clientReads.SetResult();
            await _time.TimerCreated.WaitAsync(_timeout.Token); // read to the end, waiting for the next poll
            _time.Advance(TimeSpan.FromSeconds(1));
            await _time.TimerCreated.WaitAsync(_timeout.Token); // polled once more
            return _received.Text();
        }

        public async ValueTask DisposeAsync()
        {
            await _timeout.CancelAsync();
            await FluentActions.Awaiting(async () => await _streaming).Should().ThrowAsync<OperationCanceledException>();
            _timeout.Dispose();
        }
    }

    /// <summary>What a streamer sent, appended from its task and read from the test's.</summary>
    private sealed class Received
    {
        private readonly StringBuilder _text = new();

        public void Add(ReadOnlyMemory<byte> chunk)
        {
            lock (_text)
            {
                _text.Append(Encoding.UTF8.GetString(chunk.Span));
            }
        }

        public string Text()
        {
            lock (_text)
            {
                return _text.ToString();
            }
        }
    }

    private sealed class StaticOptions(HypercoreApiOptions value) : IOptionsMonitor<HypercoreApiOptions>
    {
        public HypercoreApiOptions CurrentValue => value;

        public HypercoreApiOptions Get(string? name) => value;

        public IDisposable? OnChange(Action<HypercoreApiOptions, string?> listener) => null;
    }
}

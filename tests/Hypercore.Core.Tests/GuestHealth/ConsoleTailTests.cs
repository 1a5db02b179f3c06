using Hypercore.Consoles;
using Hypercore.GuestHealth;

namespace Hypercore.Core.Tests.GuestHealth;

public sealed class ConsoleTailTests
{
    private string _dir = null!;
    private string _log = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("hypercore-tail-").FullName;
        _log = Path.Combine(_dir, "console.log");
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void ReadLines_PartialLine_ReturnedOnlyOnceComplete()
    {
        var tail = new ConsoleTail(_log, 0);
        tail.ReadLines().Should().BeEmpty("the file does not exist yet");

        File.AppendAllText(_log, "one\r\ntw");
        tail.ReadLines().Should().Equal("one");
        File.AppendAllText(_log, "o\n");
        tail.ReadLines().Should().Equal("two");
        tail.ReadLines().Should().BeEmpty();
    }

    [Test]
    public void ReadLines_RotatedBetweenReads_LinesWrittenBeforeTheRotationAreNotLost()
    {
        var tail = new ConsoleTail(_log, 0);
        File.AppendAllText(_log, "first\n");
        tail.ReadLines().Should().Equal("first");

        File.AppendAllText(_log, "second\nthi");
        ConsoleLogFiles.RotateIfOver(_log, 4).Should().BeGreaterThan(0);
        File.AppendAllText(_log, "rd\nfourth\n");

        tail.ReadLines().Should().Equal("second", "third", "fourth");
    }

    [Test]
    public void ReadLines_RotatedTwiceBetweenReads_ReadsTheLaterPartWholeAndDropsTheCutLine()
    {
        // CI of f3fe14e: a reader that slept through two rotations read .1 (by then the later part) at its own offset
        // and joined the half line it held to the middle of another line, which read as a line of its own.
        var tail = new ConsoleTail(_log, 0);
        File.AppendAllText(_log, "first\npart");
        tail.ReadLines().Should().Equal("first");

        File.AppendAllText(_log, "ial\nsecond\n");
        ConsoleLogFiles.RotateIfOver(_log, 4).Should().BeGreaterThan(0);
        File.AppendAllText(_log, "third\nfourth\n");
        ConsoleLogFiles.RotateIfOver(_log, 4).Should().BeGreaterThan(0);
        File.AppendAllText(_log, "fifth\n");

        tail.ReadLines().Should().Equal(["third", "fourth", "fifth"], "the rest of the first part is gone; its cut line is dropped, not joined to another");
    }

    [Test]
    public async Task ReadLines_WhileAWriterAndTheRotatorRace_LinesOnlyRiseAndNoneRepeat()
    {
        // A shell appends numbered lines with `>>` (O_APPEND, as the hypervisors write their consoles), a rotator
        // copy-truncates every few milliseconds, and the tail is read every millisecond: the lines it returns rise
        // strictly, whatever the interleaving (lines are lost only between a rotation's copy and its truncation).
        File.WriteAllText(_log, "");
        var tail = new ConsoleTail(_log, 0);
        var lines = new List<string>();
        using var stop = new CancellationTokenSource();
        using var writer = System.Diagnostics.Process.Start("sh", ["-c", $"i=0; while :; do i=$((i+1)); printf 'line-%08d\\n' $i; done >> '{_log}'"])!;
        var rotations = 0;
        var rotating = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                rotations += ConsoleLogFiles.RotateIfOver(_log, 16 * 1024) > 0 ? 1 : 0;
                await Task.Delay(3);
            }
        });
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromSeconds(3))
            {
                lines.AddRange(tail.ReadLines());
                lines.Add($"#{tail.Offset}"); // where each read ended, for the message below
                await Task.Delay(1);
            }
        }
        finally
        {
            writer.Kill();
            await writer.WaitForExitAsync();
            await stop.CancelAsync();
            await rotating;
        }

        var numbers = lines.Where(l => l.Length == 13 && l.StartsWith("line-", StringComparison.Ordinal))
            .Select(l => int.Parse(l[5..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        rotations.Should().BeGreaterThan(20, "the rotator raced the reader many times");
        numbers.Should().HaveCountGreaterThan(1000);
        var at = Enumerable.Range(1, Math.Max(0, numbers.Count - 1)).FirstOrDefault(i => numbers[i] <= numbers[i - 1]);
        if (at > 0)
        {
            var raw = lines.FindIndex(l => l == $"line-{numbers[at]:D8}");
            TestContext.Progress.WriteLine("around the first line out of order: " + string.Join(" | ", lines.Skip(Math.Max(0, raw - 30)).Take(60)));
        }

        numbers.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems("a rotation never replays output or returns it out of order");
    }

    [Test]
    public void ReadLines_FromABootOffset_SkipsEarlierBoots()
    {
        File.AppendAllText(_log, "old boot READY\n");
        var tail = new ConsoleTail(_log, new FileInfo(_log).Length);
        File.AppendAllText(_log, "new boot\n");

        tail.ReadLines().Should().Equal("new boot");
    }

    [Test]
    public void ReadLines_ConsoleIsALink_NotFollowed()
    {
        var target = Path.Combine(_dir, "secret");
        File.WriteAllText(target, "host secret\n");
        File.CreateSymbolicLink(_log, target);

        new ConsoleTail(_log, 0).ReadLines().Should().BeEmpty();
    }

    [Test]
    public void ReadLines_RotatedPartReplacedByALink_ItsTargetIsNotRead()
    {
        var tail = new ConsoleTail(_log, 0);
        File.AppendAllText(_log, "first\nhal");
        tail.ReadLines().Should().Equal("first");
        ConsoleLogFiles.RotateIfOver(_log, 4).Should().BeGreaterThan(0);
        var secret = Path.Combine(_dir, "shadow");
        File.WriteAllText(secret, "root:HOST-SECRET\nmore\n");
        File.Delete(ConsoleLogFiles.Rotated(_log));
        File.CreateSymbolicLink(ConsoleLogFiles.Rotated(_log), secret); // the VMM's user owns the directory
        File.AppendAllText(_log, "after\n");

        tail.ReadLines().Should().Equal("halafter").And.NotContain(l => l.Contains("HOST-SECRET"));
    }
}

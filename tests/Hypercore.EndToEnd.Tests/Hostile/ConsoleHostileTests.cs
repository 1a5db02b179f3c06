using System.Diagnostics;
using System.Text.RegularExpressions;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests.Hostile;

/// <summary>
/// A guest that writes to its serial console without end, through the real daemon and a real QEMU guest: the
/// console log stays capped (one current part, one rotated part), the daemon keeps answering while it floods, and
/// `vis logs` shows the latest output across the rotation.
/// </summary>
[NonParallelizable]
public sealed partial class ConsoleHostileTests
{
    /// <summary>The cap the daemon is given: small, so the guest passes it many times within the test.</summary>
    private const long Cap = 256 * 1024;

    /// <summary>/init of the flooding guest: numbered lines on ttyS0, as fast as the guest can, forever.</summary>
    private const string FloodInit = """
        #!/bin/busybox sh
        /bin/busybox mount -t devtmpfs devtmpfs /dev
        exec >/dev/ttyS0 2>&1
        i=0
        while :; do
            i=$((i+1))
            echo "HYPERCORE-FLOOD-$i ................................................................................"
        done
        """;

    private Node? _node;

    [TearDown]
    public async Task StopNode()
    {
        if (_node is not null)
        {
            await _node.DisposeAsync();
            _node = null;
        }
    }

    [Test]
    public async Task GuestFloodingItsConsole_LogStaysCappedWithOneRotatedPart_AndTheDaemonKeepsAnswering()
    {
        _node = await Node.StartAsync(_ => ["--console-log-max-bytes", Cap.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await CustomInitramfs.InstallAsync(_node.StateDir, "flood", await CustomInitramfs.EnsureAsync("flood", FloodInit));

        var run = await _node.VisAsync("run", "--name", "flood", "--image", "flood", "-o", "json", "--timeout", "2m");
        run.ExitCode.Should().Be(0, run.ToString());
        var vm = VmView.Parse(run.Stdout);
        var dir = Path.Combine(_node.RuntimeDir, vm.Uid);
        var console = Path.Combine(dir, "console.log");
        var rotated = console + ".1";

        // Let the guest write at least 12 caps' worth, sampling the files and asking the daemon along the way.
        var clock = Stopwatch.StartNew();
        long largest = 0, written = 0;
        var rotations = 0;
        var lastRotatedStamp = DateTime.MinValue;
        var answers = new List<TimeSpan>();
        // What may be kept grows with the guest's speed (each part may pass the cap by about a second of output), so the
        // run lasts until the guest has written three times that much too: only then does "old output is dropped" below
        // say something, however fast this machine is.
        static long MayKeep(double rate) => 2 * (Cap + (long)(rate * 3) + 64 * 1024);
        while (written < 12 * Cap || written < 3 * MayKeep(written / Math.Max(clock.Elapsed.TotalSeconds, 0.1)))
        {
            if (clock.Elapsed > TimeSpan.FromMinutes(4))
            {
                Assert.Fail($"the guest wrote only {written} bytes in {clock.Elapsed}; console.log is {Size(console)} bytes");
            }

            largest = Math.Max(largest, Size(console));
            if (File.Exists(rotated) && File.GetLastWriteTimeUtc(rotated) != lastRotatedStamp)
            {
                lastRotatedStamp = File.GetLastWriteTimeUtc(rotated);
                rotations++;
            }

            written = Math.Max(written, LastLineNumber(Node.ReadShared(console)) * LineLength);
            if (answers.Count < clock.Elapsed.TotalSeconds / 5)
            {
                var list = await _node.VisAsync("get", "flood", "-o", "json");
                list.ExitCode.Should().Be(0, "the daemon keeps answering while a guest floods its console: " + list);
                VmView.Parse(list.Stdout).Phase.Should().Be("Running");
                answers.Add(list.Elapsed);
            }

            await Task.Delay(100);
        }

        var seconds = clock.Elapsed.TotalSeconds;
        var rate = written / seconds; // bytes the guest writes per second, measured
        TestContext.Progress.WriteLine(
            $"flood: {written} bytes in {seconds:0.0} s ({rate / 1024:0} KiB/s), {rotations} rotations seen, largest console.log {largest} bytes, " +
            $"vis get answered in {string.Join(", ", answers.Select(a => $"{a.TotalSeconds:0.0} s"))}");

        rotations.Should().BeGreaterThan(1, "the log passed the cap several times");
        // The cap is checked every second: the current part may pass it by what the guest writes in about a second.
        largest.Should().BeLessThan(Cap + (long)(rate * 3) + 64 * 1024, "console.log is kept near the cap, not left to grow with the {0} bytes written", written);
        Size(rotated).Should().BeLessThan(Cap + (long)(rate * 3) + 64 * 1024);
        (Size(console) + Size(rotated)).Should().BeLessThan(written / 3, "old output is dropped, not kept");
        Directory.GetFiles(dir).Select(Path.GetFileName).Where(f => f!.StartsWith("console", StringComparison.Ordinal))
            .Should().BeEquivalentTo(["console.log", "console.log.1"], "one rotated part, no more");

        // `vis logs --tail` reads across the rotation and shows the newest lines.
        var logs = await _node.VisAsync("logs", "flood", "--tail", "3");
        logs.ExitCode.Should().Be(0, logs.ToString());
        LastLineNumber(logs.Stdout).Should().BeGreaterThan(written / LineLength - 1, "the tail is the newest output");
        // `vis logs -f` keeps following across rotations: the numbers only go up (a few lines are lost to each
        // copy-truncate, none repeated), and the stream spans more than a cap's worth of output.
        var followed = await FollowAsync(_node, "flood", TimeSpan.FromSeconds(8));
        var numbers = FloodLine().Matches(followed).Select(m => long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        numbers.Should().HaveCountGreaterThan(100, "vis logs -f printed the flood:\n{0}", followed.Length > 2000 ? followed[^2000..] : followed);
        numbers.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems("a rotation never replays output");
        (numbers[^1] - numbers[0]).Should().BeGreaterThan(Cap / LineLength * 3 / 2, "the follow outlived at least one rotation");
        _node.Daemon.HasExited.Should().BeFalse();

        var delete = await _node.VisAsync("delete", "flood", "--wait", "--timeout", "2m");
        delete.ExitCode.Should().Be(0, delete.ToString());
        Directory.Exists(dir).Should().BeFalse("delete removes the console log and its rotated part");
    }

    /// <summary>About the bytes of one flood line: 16 + digits + 1 + 80 + 1 (99 to 105 for the numbers reached here).</summary>
    private const long LineLength = 100;

    /// <summary>Runs `vis logs ID -f` for <paramref name="duration"/>, then interrupts it; returns what it printed.</summary>
    private static async Task<string> FollowAsync(Node node, string id, TimeSpan duration)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { BuiltPrograms.VisDll, "--host", node.GrpcUrl, "logs", id, "-f" })
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        await Task.Delay(duration);
        process.HasExited.Should().BeFalse("vis logs -f keeps following");
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        return await stdout;
    }

    private static long Size(string path) => File.Exists(path) ? new FileInfo(path).Length : 0;

    private static long LastLineNumber(string text)
    {
        var matches = FloodLine().Matches(text);
        return matches.Count == 0 ? 0 : long.Parse(matches[^1].Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"HYPERCORE-FLOOD-(\d+) \.{80}")]
    private static partial Regex FloodLine();
}

using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// Snapshots as a user takes them: the real vistarad and vis, real QEMU under TCG, the default image with its
/// <c>hypercore.count</c> hook (prints "count N" every second). One story, because each step needs the one before:
/// snapshot a counting guest, start a new VM from it (the count goes on), delete the source (the snapshot stays),
/// damage the state file (a clear condition, nothing started), delete the snapshot (its files go).
/// </summary>
[NonParallelizable]
public sealed partial class SnapshotEndToEndTests
{
    private Node _node = null!;

    [SetUp]
    public async Task StartNode() => _node = await Node.StartAsync();

    [TearDown]
    public async Task StopNode()
    {
        foreach (var id in new[] { "counter", "clone", "broken" })
        {
            await _node.ForceDeleteAsync("default", id);
        }

        await _node.DisposeAsync();
    }

    [Test]
    public async Task SnapshotRestoreDeleteCorrupt_ThroughDaemonAndVis()
    {
        var config = Path.Combine(_node.Root, "counter.toml");
        await File.WriteAllTextAsync(config, """
            name = "counter"
            image = "default"
            [kernel]
            cmdline = { "hypercore.count" = true }
            """);

        // Cold boot: vis run -> the guest's ready line.
        var boot = Stopwatch.StartNew();
        var run = await _node.VisAsync("run", "-c", config, "-o", "json", "--timeout", "2m");
        run.ExitCode.Should().Be(0, run.ToString());
        var counter = VmView.Parse(run.Stdout);
        await Node.WaitForGuestReadyAsync(counter.ConsoleLogPath, Node.Patience);
        var coldBoot = boot.Elapsed;
        await WaitForCountAsync(counter.ConsoleLogPath, 3);

        // The source runs on after its snapshot, so only the count printed before the request is known to be saved.
        var countBefore = LastCount(await File.ReadAllTextAsync(counter.ConsoleLogPath));
        var take = await _node.VisAsync("snapshot", "create", "counter", "snap1", "-o", "json");
        take.ExitCode.Should().Be(0, take.ToString());
        using var info = JsonDocument.Parse(take.Stdout);
        var size = long.Parse(info.RootElement.GetProperty("sizeBytes").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        var took = info.RootElement.GetProperty("durationSeconds").GetDouble();
        var snapshotDir = Path.Combine(_node.StateDir, "snapshots", "snap1");
        info.RootElement.GetProperty("path").GetString().Should().Be(snapshotDir);
        File.Exists(Path.Combine(snapshotDir, "memory.state")).Should().BeTrue();
        (await _node.GetAsync("counter")).Phase.Should().Be("Running", "a running VM runs on after its snapshot");

        // Restore into a new VM: vis run --from-snapshot -> the guest's next console line.
        var restore = Stopwatch.StartNew();
        var clone = await _node.VisAsync("run", "--from-snapshot", "snap1", "--name", "clone", "-o", "json", "--timeout", "2m");
        clone.ExitCode.Should().Be(0, clone.ToString());
        var cloned = VmView.Parse(clone.Stdout);
        var phases = ClonePhase().Matches(clone.Stderr).Select(m => m.Groups[1].Value).ToList();
        phases.Should().NotBeEmpty("without a terminal vis prints each phase as a line");
        phases.SkipWhile(p => p != "Provisioning").Should().NotContain("Pending", $"a phase never goes back (vis printed: {string.Join(", ", phases)})");
        (await _node.GetAsync("clone")).RestoredFrom.Should().Be("snap1", "the status names the snapshot this run was restored from");
        await WaitForCountAsync(cloned.ConsoleLogPath, 1);
        var restoreToLine = restore.Elapsed;
        var counts = Counts(await File.ReadAllTextAsync(cloned.ConsoleLogPath));
        counts[0].Should().BeGreaterThan(countBefore, "the restored guest counts on from the snapshot, not from 1");
        (await File.ReadAllTextAsync(cloned.ConsoleLogPath)).Should().NotContain("Linux version", "a restored guest does not boot");
        ProcFs.CommandLine(cloned.Pid).Should().Contain("defer");
        TestContext.Progress.WriteLine(
            $"[measure] snapshot: {size / 1048576.0:0.0} MiB on disk, taken in {took:0.00} s (vis: {take.Elapsed.TotalSeconds:0.00} s); " +
            $"cold boot vis run -> {GuestImage.ReadyLine}: {coldBoot.TotalSeconds:0.00} s; restore vis run --from-snapshot -> next console line: {restoreToLine.TotalSeconds:0.00} s; " +
            $"ratio {coldBoot.TotalSeconds / restoreToLine.TotalSeconds:0.0}x; count before the snapshot {countBefore}, first restored count {counts[0]}");

        // Deleting the source VM leaves the snapshot.
        var delete = await _node.VisAsync("delete", "counter", "--wait");
        delete.ExitCode.Should().Be(0, delete.ToString());
        var listed = await _node.VisAsync("snapshot", "ls", "-o", "json");
        listed.Stdout.Should().Contain("\"name\": \"snap1\"");
        Directory.Exists(snapshotDir).Should().BeTrue();

        // A damaged state file: Failed with a condition that says so, and no QEMU for it.
        var state = Path.Combine(snapshotDir, "memory.state");
        await using (var f = new FileStream(state, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = f.Length / 2;
            var b = f.ReadByte();
            f.Position = f.Length / 2;
            f.WriteByte((byte)(b ^ 0xff));
        }

        var broken = await _node.VisAsync("run", "--from-snapshot", "snap1", "--name", "broken", "--timeout", "1m");
        broken.ExitCode.Should().NotBe(0, broken.ToString());
        broken.Stderr.Should().Contain("sha256");
        var brokenVm = await _node.GetAsync("broken");
        brokenVm.Phase.Should().Be("Failed");
        brokenVm.Condition("Ready")!.Value.Reason.Should().Be("SnapshotCorrupt");
        ProcFs.FindByCommandLine(brokenVm.Uid).Should().BeEmpty("nothing is started from a damaged snapshot");

        var rm = await _node.VisAsync("snapshot", "rm", "snap1");
        rm.ExitCode.Should().Be(0, rm.ToString());
        Directory.Exists(snapshotDir).Should().BeFalse();
        (await _node.VisAsync("snapshot", "rm", "snap1")).ExitCode.Should().Be(3, "NotFound");
    }

    private static async Task WaitForCountAsync(string consoleLog, int n)
    {
        var stopwatch = Stopwatch.StartNew();
        while (stopwatch.Elapsed < Node.Patience)
        {
            if (File.Exists(consoleLog) && LastCount(await File.ReadAllTextAsync(consoleLog)) >= n)
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"no \"count {n}\" in {consoleLog} within {Node.Patience}");
    }

    private static List<int> Counts(string console) =>
        CountLine().Matches(console).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();

    private static int LastCount(string console) => Counts(console) is { Count: > 0 } c ? c[^1] : 0;

    [GeneratedRegex(@"default/clone: (\w+)")]
    private static partial Regex ClonePhase();

    [GeneratedRegex(@"^count (\d+)\r?$", RegexOptions.Multiline)]
    private static partial Regex CountLine();
}

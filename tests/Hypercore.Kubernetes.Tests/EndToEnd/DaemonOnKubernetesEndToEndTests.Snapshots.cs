using System.Diagnostics;
using System.Text.RegularExpressions;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.Store.Kubernetes;
using Hypercore.Store.Kubernetes.Snapshots;

namespace Hypercore.Kubernetes.Tests.EndToEnd;

/// <summary>
/// snapshots (issue 14) on Kubernetes: a MicroVMSnapshot applied with kubectl makes the real vistarad snapshot a real
/// QEMU guest that counts on its console (the default image's <c>hypercore.count</c> hook); a new MicroVM with
/// <c>spec.restoreFrom</c> naming it counts on from there; deleting the MicroVMSnapshot deletes the files.
/// </summary>
public sealed partial class DaemonOnKubernetesEndToEndTests
{
    [Test]
    public async Task Kubectl_MicroVmSnapshotOfACountingGuest_RestoredIntoANewMicroVm_CountsOn_AndDeleteRemovesTheFiles()
    {
        var daemon = StartDaemon();
        await daemon.WaitReadyAsync(Patience);

        await Run("apply", "-f", WriteCountingSample("counter", restoreFrom: null));
        var counter = await WaitForPhaseAsync(daemon, "counter", "Running");
        var counterConsole = (string)counter["status"]!["consoleLogPath"]!;
        await UntilAsync(() => LastCount(counterConsole) >= 3, $"\"count 3\" in {counterConsole}", daemon);
        var countBefore = LastCount(counterConsole);

        var snapshotFile = Path.Combine(Cluster.Directory.FullName, "snap1.yaml");
        await File.WriteAllTextAsync(snapshotFile,
            $"apiVersion: hypercore.vistara.dev/v1alpha1\nkind: MicroVMSnapshot\nmetadata:\n  name: snap1\n  namespace: {Namespace}\nspec:\n  microVMName: counter\n");
        var taking = Stopwatch.StartNew();
        (await Run("apply", "-f", snapshotFile)).Stdout.Should().Contain("microvmsnapshot.hypercore.vistara.dev/snap1 created");
        System.Text.Json.Nodes.JsonObject? snap = null;
        await UntilAsync(
            () => (string?)(snap = Cluster.Server.Get(MicroVmResource.Group, MicroVmSnapshotResource.Plural, Namespace, "snap1"))?["status"]?["phase"] is "Ready" or "Failed",
            () => $"snap1 Ready; last status: {snap?["status"]?.ToJsonString() ?? "(none)"}", daemon);
        var tookSeconds = taking.Elapsed.TotalSeconds;
        ((string?)snap!["status"]!["phase"]).Should().Be("Ready", snap["status"]!.ToJsonString());
        ((string?)snap["status"]!["node"]).Should().Be(Node);
        ((string?)snap["status"]!["sourceUid"]).Should().Be((string)counter["metadata"]!["uid"]!);
        var snapshotDir = Path.Combine(StateDir, "snapshots", "snap1");
        ((string?)snap["status"]!["path"]).Should().Be(snapshotDir);
        File.Exists(Path.Combine(snapshotDir, "memory.state")).Should().BeTrue();
        var size = (long)snap["status"]!["sizeBytes"]!;
        size.Should().BeGreaterThan(16L << 20, "the memory of a running 128 MiB guest is in it");
        var row = KubectlTable.Parse((await Run("get", "mvmsnap")).Stdout).Row("snap1");
        row[..5].Should().Equal("snap1", "counter", "Ready", Node, (string)snap["status"]!["size"]!);
        (await WaitForPhaseAsync(daemon, "counter", "Running"))["status"]!["pid"]!.GetValue<int>()
            .Should().Be((int)counter["status"]!["pid"]!, "a running VM runs on after its snapshot");

        var restoring = Stopwatch.StartNew();
        await Run("apply", "-f", WriteCountingSample("clone", restoreFrom: "snap1"));
        var clone = await WaitForPhaseAsync(daemon, "clone", "Running");
        var cloneConsole = (string)clone["status"]!["consoleLogPath"]!;
        await UntilAsync(() => LastCount(cloneConsole) >= 1, $"a count in the restored guest's console {cloneConsole}", daemon);
        var restoreToLine = restoring.Elapsed;
        var counts = Counts(File.ReadAllText(cloneConsole));
        counts[0].Should().BeGreaterThan(countBefore, "the restored guest counts on from the snapshot, not from 1");
        File.ReadAllText(cloneConsole).Should().NotContain("Linux version", "a restored guest does not boot");
        TestContext.Progress.WriteLine(
            $"[measure] kubectl MicroVMSnapshot: {size / 1048576.0:0.0} MiB, apply -> Ready {tookSeconds:0.00} s; restore apply -> first console count {restoreToLine.TotalSeconds:0.00} s; " +
            $"count before {countBefore}, first restored {counts[0]}");

        (await Run("delete", "mvmsnap", "snap1", "--wait=false")).Stdout.Should().Contain("deleted");
        await UntilAsync(() => Cluster.Server.Get(MicroVmResource.Group, MicroVmSnapshotResource.Plural, Namespace, "snap1") is null,
            "the daemon to delete the snapshot's files and release the MicroVMSnapshot", daemon);
        Directory.Exists(snapshotDir).Should().BeFalse("deleting the MicroVMSnapshot deletes its files");
        (await WaitForPhaseAsync(daemon, "clone", "Running"))["status"]!["pid"]!.GetValue<int>()
            .Should().Be((int)clone["status"]!["pid"]!, "a VM restored from a snapshot runs on after the snapshot is deleted");

        foreach (var name in new[] { "clone", "counter" })
        {
            await Run("delete", "mvm", name, "--wait=false");
            await UntilAsync(() => Cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, Namespace, name) is null, $"the daemon to delete {name}", daemon);
        }
    }

    /// <summary>The sample with the image's counting hook on, or restoring from a snapshot (whose hardware it then runs).</summary>
    private string WriteCountingSample(string name, string? restoreFrom)
    {
        var path = WriteSample(name);
        var text = File.ReadAllText(path);
        text.Should().Contain("      console: ttyS0\n");
        text = text.Replace("      console: ttyS0\n", "      console: ttyS0\n      hypercore.count: \"\"\n", StringComparison.Ordinal);
        if (restoreFrom is not null)
        {
            text = text.Replace("\nspec:\n", $"\nspec:\n  restoreFrom: {restoreFrom}\n", StringComparison.Ordinal);
        }

        File.WriteAllText(path, text);
        return path;
    }

    private static int LastCount(string console) =>
        File.Exists(console) && Counts(File.ReadAllText(console)) is { Count: > 0 } c ? c[^1] : 0;

    private static List<int> Counts(string console) =>
        CountLine().Matches(console).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();

    [GeneratedRegex(@"^count (\d+)\r?$", RegexOptions.Multiline)]
    private static partial Regex CountLine();
}

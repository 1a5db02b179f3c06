using System.Diagnostics;
using System.Text.RegularExpressions;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Snapshots;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>
/// Snapshots with real QEMU (TCG) and the default image: a guest booted with <c>hypercore.count</c> prints
/// "count N" every second, so a restored guest is told apart from a fresh boot by where its count goes on.
/// </summary>
[NonParallelizable]
public sealed partial class QemuSnapshotTests
{
    private QemuTestBed _bed = null!;
    private SnapshotStore _store = null!;

    [SetUp]
    public void SetUp()
    {
        _bed = new QemuTestBed();
        _store = new SnapshotStore(Path.Combine(_bed.RuntimeDirectory, "snapshots"));
    }

    [TearDown]
    public void TearDown() => _bed.Dispose();

    [Test]
    public async Task Snapshot_CountingGuest_RestoredVmContinuesTheCount()
    {
        var driver = _bed.Driver();
        var source = CountingVm("source");
        await driver.StartAsync(source);
        await WaitForCountAsync(source, 3);

        // The source runs on after its snapshot: the saved count lies between these two.
        var countBefore = LastCount(_bed.Console(source));
        var sw = Stopwatch.StartNew();
        var manifest = await TakeAsync(driver, source, "counting");
        var took = sw.Elapsed;
        var countAtSnapshot = LastCount(_bed.Console(source));
        var file = manifest.Files.Single(f => f.Name == QemuDriver.StateFile);
        TestContext.Progress.WriteLine($"snapshot: {took.TotalSeconds:0.00} s, state file {file.Size} bytes, allocated {manifest.SizeBytes} bytes, count at snapshot {countAtSnapshot}");

        manifest.HypervisorVersion.Should().MatchRegex(@"^\d+\.\d+\.\d+$");
        manifest.Machine.Should().Be("microvm accel=tcg");
        manifest.WasRunning.Should().BeTrue();
        file.Sha256.Should().Be(SnapshotStore.Sha256(Path.Combine(_store.PathOf("counting"), file.Name)));
        (await driver.InspectAsync(source)).State.Should().Be(LiveState.Running, "a running VM runs on after its snapshot");
        await WaitForCountAsync(source, countAtSnapshot + 2);

        var restored = CountingVm("restored");
        var context = RestoreContext(restored, manifest);
        sw.Restart();
        var info = await driver.StartAsync(context);
        await _bed.WaitUntilAsync(() => Counts(_bed.Console(restored)).Count >= 2, "two count lines from the restored guest");
        TestContext.Progress.WriteLine($"restore: start returned after {sw.Elapsed.TotalSeconds:0.00} s; first lines: {string.Join(", ", Counts(_bed.Console(restored)).Take(3))}");

        info.State.Should().Be(LiveState.Running);
        var counts = Counts(_bed.Console(restored));
        counts[0].Should().BeGreaterThan(countBefore, "the guest goes on counting from the snapshot");
        counts[0].Should().BeLessThanOrEqualTo(countAtSnapshot + 1);
        counts.Should().BeInAscendingOrder();
        _bed.Console(restored).Should().NotContain("Linux version", "a restored guest does not boot").And.NotContain(global::Hypercore.Testing.GuestImage.ReadyLine);
        File.ReadAllText($"/proc/{info.Pid}/cmdline").Should().Contain("-incoming\0defer");
        (await driver.InspectAsync(source)).State.Should().Be(LiveState.Running, "the source is untouched by the restore");
    }

    [Test]
    public async Task Snapshot_SourceWithMetadata_RestoredVmWithoutMetadataLoadsTheSameDeviceSet()
    {
        // The source's user-data gives it a NoCloud seed disk; the saved state names that device, so the restored VM
        // (whose own spec has no metadata) must get one too or QEMU refuses the state ("Unknown savevm section").
        var driver = _bed.Driver();
        var source = CountingVm("seeded", s => s with
        {
            Metadata = new Dictionary<string, string> { ["user-data"] = "#!/bin/sh\necho SEEDED-USER-DATA\n" },
        });
        await driver.StartAsync(source);
        await WaitForCountAsync(source, 2);
        _bed.Console(source).Should().Contain("SEEDED-USER-DATA");
        var manifest = await TakeAsync(driver, source, "seeded");
        var countAtSnapshot = LastCount(_bed.Console(source));

        var restored = CountingVm("unseeded");
        var context = RestoreContext(restored, manifest);
        context.Vm.Spec.Metadata.Should().ContainKey("user-data", "the restored view takes the snapshot's metadata");
        var info = await driver.StartAsync(context);
        await _bed.WaitUntilAsync(() => Counts(_bed.Console(restored)).Count >= 2, "two count lines from the restored guest");

        info.State.Should().Be(LiveState.Running);
        Counts(_bed.Console(restored))[0].Should().BeLessThanOrEqualTo(countAtSnapshot + 1, "the guest goes on from the snapshot");
        _bed.Console(restored).Should().NotContain("Linux version", "a restored guest does not boot");
    }

    [Test]
    public async Task Snapshot_QemuRunningAsNobody_SavesAndRestoresThroughSocketsItCanUse()
    {
        // QEMU as nobody must connect to the daemon's snapshot socket, and the daemon to QEMU's restore socket.
        var driver = _bed.Driver(o => o.RunAs = "65534:65534");
        var source = CountingVm("nobody", s => s with { AdditionalVolumes = [new VolumeSpec { Id = "data", SizeInMb = 16 }] });
        await driver.StartAsync(source);
        await WaitForCountAsync(source, 1);
        var countBefore = LastCount(_bed.Console(source));

        var manifest = await TakeAsync(driver, source, "nobody");

        var restored = CountingVm("nobody-restored");
        var info = await driver.StartAsync(RestoreContext(restored, manifest));
        await _bed.WaitUntilAsync(() => Counts(_bed.Console(restored)).Count >= 1, "a count line from the restored guest");
        Counts(_bed.Console(restored))[0].Should().BeGreaterThan(countBefore);
        File.ReadAllText($"/proc/{info.Pid}/status").Should().MatchRegex(@"Uid:\s+65534\s");
        new FileInfo(Path.Combine(_bed.VmDir(restored), "restored-disk-data.img")).Exists.Should().BeTrue();
    }

    [Test]
    public async Task Snapshot_PausedVm_StaysPausedAndRestoresPausedWhenAsked()
    {
        var driver = _bed.Driver();
        var source = CountingVm("paused");
        await driver.StartAsync(source);
        await WaitForCountAsync(source, 1);
        await driver.PauseAsync(source);

        var manifest = await TakeAsync(driver, source, "paused");

        manifest.WasRunning.Should().BeFalse();
        (await driver.InspectAsync(source)).State.Should().Be(LiveState.Paused);
        await driver.ResumeAsync(source);
        (await driver.InspectAsync(source)).State.Should().Be(LiveState.Running, "cont resumes a VM left in postmigrate");

        var restored = CountingVm("restored-paused", s => s with { State = DesiredState.Paused });
        var info = await driver.StartAsync(RestoreContext(restored, manifest));
        info.State.Should().Be(LiveState.Paused);
    }

    [Test]
    public async Task Snapshot_WritableScratchDisk_IsCopiedAndRestoredAsAFreshCopy()
    {
        var driver = _bed.Driver();
        var source = CountingVm("disk", s => s with { AdditionalVolumes = [new VolumeSpec { Id = "data", SizeInMb = 64 }] });
        await driver.StartAsync(source);
        await WaitForCountAsync(source, 1);
        var scratch = Path.Combine(_bed.VmDir(source), "scratch-data.img");
        await using (var f = new FileStream(scratch, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            // The guest does not write to it; a mark written from the host shows the copy is of this disk.
            f.Position = 1 << 20;
            f.Write("hypercore-snapshot-mark"u8);
        }

        var manifest = await TakeAsync(driver, source, "disk");

        manifest.Disks.Should().ContainSingle().Which.Should().Be(new SnapshotDisk("data", "disk-data.img"));
        var copy = Path.Combine(_store.PathOf("disk"), "disk-data.img");
        new FileInfo(copy).Length.Should().Be(64L << 20);
        File.ReadAllBytes(copy).AsSpan(1 << 20, 23).ToArray().Should().Equal("hypercore-snapshot-mark"u8.ToArray());

        var restored = CountingVm("disk-restored");
        var info = await driver.StartAsync(RestoreContext(restored, manifest));

        var restoredDisk = Path.Combine(_bed.VmDir(restored), "restored-disk-data.img");
        File.ReadAllBytes(restoredDisk).AsSpan(1 << 20, 23).ToArray().Should().Equal("hypercore-snapshot-mark"u8.ToArray());
        File.ReadAllText($"/proc/{info.Pid}/cmdline").Should().Contain($"file={restoredDisk}");
        File.Exists(Path.Combine(_bed.VmDir(restored), "scratch-data.img")).Should().BeFalse("the saved disk replaces the scratch disk");
    }

    [Test]
    public async Task Restore_CorruptStateFile_StepFailsWithConditionAndNothingStarts()
    {
        var driver = _bed.Driver();
        var source = CountingVm("corrupt");
        await driver.StartAsync(source);
        await WaitForCountAsync(source, 1);
        var manifest = await TakeAsync(driver, source, "corrupt");
        await driver.StopAsync(source, TimeSpan.Zero);
        var state = Path.Combine(_store.PathOf("corrupt"), QemuDriver.StateFile);
        await using (var f = new FileStream(state, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = f.Length / 2;
            var b = f.ReadByte();
            f.Position = f.Length / 2;
            f.WriteByte((byte)(b ^ 0xff));
        }

        var restored = CountingVm("from-corrupt", s => s with { RestoreFrom = "corrupt" });
        var step = new SnapshotRestoreStep(_store, new DriverRegistry([driver], "qemu"), NullLogger<SnapshotRestoreStep>.Instance);
        var result = await step.PrepareAsync(new StartContext(restored), CancellationToken.None);

        result.Outcome.Should().Be(StartStepOutcome.Fail);
        result.Reason.Should().Be(SnapshotRestoreStep.ReasonCorrupt);
        result.Message.Should().Contain("memory.state").And.Contain("sha256").And.Contain("take a new one");
        QemuTestBed.PidsMentioning(_bed.RuntimeDirectory).Should().BeEmpty();
        _ = manifest;
    }

    [Test]
    public async Task Restore_TruncatedStateBehindTheStepsBack_DriverFailsAndLeavesNothingRunning()
    {
        var driver = _bed.Driver();
        var source = CountingVm("trunc");
        await driver.StartAsync(source);
        await WaitForCountAsync(source, 1);
        var manifest = await TakeAsync(driver, source, "trunc");
        var state = Path.Combine(_store.PathOf("trunc"), QemuDriver.StateFile);
        await using (var f = new FileStream(state, FileMode.Open, FileAccess.Write))
        {
            f.SetLength(f.Length / 3);
        }

        var restored = CountingVm("from-trunc");
        var act = () => driver.StartAsync(RestoreContext(restored, manifest));

        var ex = (await act.Should().ThrowAsync<DriverException>()).Which;
        ex.Reason.Should().Be("SnapshotRestoreFailed");
        ex.Message.Should().Contain("trunc");
        QemuTestBed.PidsMentioning(_bed.VmDir(restored)).Should().BeEmpty();
        (await driver.InspectAsync(restored)).State.Should().Be(LiveState.NotFound);
    }

    [Test]
    public async Task Step_SnapshotOfAnotherNamespaceOrMissing_FailsWithoutStarting()
    {
        var driver = _bed.Driver();
        var registry = new DriverRegistry([driver], "qemu");
        var step = new SnapshotRestoreStep(_store, registry, NullLogger<SnapshotRestoreStep>.Instance);

        var missing = await step.PrepareAsync(new StartContext(CountingVm("m", s => s with { RestoreFrom = "nope" })), CancellationToken.None);
        missing.Outcome.Should().Be(StartStepOutcome.Fail);
        missing.Reason.Should().Be(SnapshotRestoreStep.ReasonNotFound);
        missing.Message.Should().Contain("\"nope\"");

        var source = CountingVm("ns");
        await driver.StartAsync(source);
        await TakeAsync(driver, source, "ns-snap");
        var other = await step.PrepareAsync(new StartContext(CountingVm("o", s => s with { Namespace = "other", RestoreFrom = "ns-snap" })), CancellationToken.None);
        other.Outcome.Should().Be(StartStepOutcome.Fail);
        other.Message.Should().Contain("namespace \"default\"");

        var ok = new StartContext(CountingVm("ok", s => s with { RestoreFrom = "ns-snap", MemoryInMb = 256, Kernel = s.Kernel with { Cmdline = new Dictionary<string, string>() } }));
        (await step.PrepareAsync(ok, CancellationToken.None)).Outcome.Should().Be(StartStepOutcome.Proceed);
        ok.Vm.Spec.MemoryInMb.Should().Be(128, "a restored VM runs the snapshot's hardware");
        ok.Vm.Spec.Kernel.Cmdline.Should().ContainKey("hypercore.count");
        ok.Vm.Spec.Id.Should().Be("ok");
        ok.Items[SnapshotRestore.ItemKey].Should().BeOfType<SnapshotRestore>();
    }

    private static MicroVm CountingVm(string id, Func<MicroVmSpec, MicroVmSpec>? change = null) =>
        QemuTestBed.Vm(id, a => a["hypercore.count"] = "", change);

    private StartContext RestoreContext(MicroVm vm, SnapshotManifest manifest)
    {
        var context = new StartContext(vm) { Vm = SnapshotRestoreStep.RestoredView(vm, manifest) };
        context.Items[SnapshotRestore.ItemKey] = new SnapshotRestore(_store.PathOf(manifest.Name), manifest);
        return context;
    }

    /// <summary>What the snapshot manager does, without the API: the driver writes into staging, the store commits.</summary>
    private async Task<SnapshotManifest> TakeAsync(QemuDriver driver, MicroVm vm, string name)
    {
        var staging = _store.BeginWrite(name);
        var taken = await driver.SnapshotAsync(vm, staging);
        var (files, allocated) = SnapshotStore.Describe(staging, taken.StateFiles);
        var manifest = new SnapshotManifest
        {
            Name = name,
            Namespace = vm.Spec.Namespace,
            SourceId = vm.Spec.Id,
            SourceUid = vm.Uid,
            Provider = "qemu",
            HypervisorVersion = taken.HypervisorVersion,
            Machine = taken.Machine,
            Spec = vm.Spec,
            CreatedAt = DateTimeOffset.UnixEpoch,
            WasRunning = taken.WasRunning,
            Files = files,
            Disks = taken.Disks,
            SizeBytes = allocated,
        };
        _store.Commit(staging, manifest).Should().BeTrue();
        _store.Verify(manifest).Should().BeNull();
        return manifest;
    }

    private Task WaitForCountAsync(MicroVm vm, int n) =>
        _bed.WaitUntilAsync(() => LastCount(_bed.Console(vm)) >= n, $"count {n} from {vm.Spec.Id}");

    private static List<int> Counts(string console) =>
        CountLine().Matches(console).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();

    private static int LastCount(string console) => Counts(console) is { Count: > 0 } c ? c[^1] : 0;

    [GeneratedRegex(@"^count (\d+)\r?$", RegexOptions.Multiline)]
    private static partial Regex CountLine();
}

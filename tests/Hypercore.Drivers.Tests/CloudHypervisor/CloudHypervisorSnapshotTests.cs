using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Tests.Snapshots;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Hypercore.Snapshots;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.CloudHypervisor;

/// <summary>
/// Snapshot and restore through cloud-hypervisor's vm.snapshot and vm.restore, against the stand-in, which writes
/// config.json, state.json and memory-ranges and restores a fresh VMM from them (Paused, then vm.resume).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class CloudHypervisorSnapshotTests
{
    private Scratch _scratch = null!;
    private CloudHypervisorDriver _driver = null!;
    private SnapshotStore _store = null!;

    [SetUp]
    public void SetUp()
    {
        _scratch = new Scratch();
        _store = new SnapshotStore(Path.Combine(_scratch.Root, "snapshots"));
        _driver = new CloudHypervisorDriver(Options.Create(new CloudHypervisorOptions
        {
            BinaryPath = StandIns.CloudHypervisor,
            RuntimeDirectory = _scratch.RuntimeDirectory,
            RequireKvm = false,
            StartTimeout = TimeSpan.FromSeconds(60),
        }), TimeProvider.System, NullLogger<CloudHypervisorDriver>.Instance);
    }

    [TearDown]
    public async Task TearDown()
    {
        _driver.Dispose(); // its pidfd exit watch (issue 15)
        await _scratch.DisposeAsync();
    }

    private MicroVm ReadOnlyRootVm(string id, DesiredState state = DesiredState.Running) =>
        _scratch.Vm(id, s => s with { RootVolume = s.RootVolume! with { IsReadOnly = true }, State = state });

    private UnixSocketApi Api(MicroVm vm) =>
        new(Path.Combine(_scratch.VmDirectory(vm), "api.sock"), new ApiPolicy(TimeSpan.FromSeconds(10), 3, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)), TimeProvider.System);

    [Test]
    public async Task Snapshot_RunningVm_WritesItsFilesAndRestoreRunsAFreshVmmFromThem()
    {
        var source = ReadOnlyRootVm("ch-src");
        await _driver.StartAsync(source);

        var manifest = await SnapshotHelper.TakeAsync(_store, _driver, source, "ch1");

        manifest.HypervisorVersion.Should().Be("41.0.0");
        manifest.Files.Select(f => f.Name).Should().BeEquivalentTo(["config.json", "memory-ranges", "state.json"]);
        manifest.Files.Should().OnlyContain(f => f.Sha256 != null);
        (await _driver.InspectAsync(source)).State.Should().Be(LiveState.Running);
        (await _driver.CheckRestorableAsync(manifest)).Should().BeNull();

        var restored = ReadOnlyRootVm("ch-restored");
        var info = await _driver.StartAsync(SnapshotHelper.RestoreContext(_store, restored, manifest));

        info.State.Should().Be(LiveState.Running);
        using var api = Api(restored);
        var vmInfo = (await api.GetAsync("/api/v1/vm.info", default)).Json!;
        vmInfo["config"]!["memory"]!["size"]!.GetValue<long>().Should().Be(256L << 20);
        vmInfo["config"]!["disks"]!.AsArray().Should().ContainSingle().Which!["path"]!.GetValue<string>().Should().Be(_scratch.RootDisk);
    }

    [Test]
    public async Task Restore_DesiredPaused_StaysPaused()
    {
        var source = ReadOnlyRootVm("ch-src-p");
        await _driver.StartAsync(source);
        var manifest = await SnapshotHelper.TakeAsync(_store, _driver, source, "ch-p");

        var info = await _driver.StartAsync(SnapshotHelper.RestoreContext(_store, ReadOnlyRootVm("ch-p-r", DesiredState.Paused), manifest));

        info.State.Should().Be(LiveState.Paused);
    }

    [Test]
    public async Task Restore_MemoryFileGone_FailsWithTheVmmsWordsAndLeavesNothing()
    {
        var source = ReadOnlyRootVm("ch-src-m");
        await _driver.StartAsync(source);
        var manifest = await SnapshotHelper.TakeAsync(_store, _driver, source, "ch-m");
        File.Delete(Path.Combine(_store.PathOf("ch-m"), "memory-ranges"));

        var restored = ReadOnlyRootVm("ch-m-r");
        var act = () => _driver.StartAsync(SnapshotHelper.RestoreContext(_store, restored, manifest));

        var ex = (await act.Should().ThrowAsync<DriverException>()).Which;
        ex.Reason.Should().Be("SnapshotRestoreFailed");
        ex.Message.Should().Contain("vm.restore failed (500)").And.Contain("memory-ranges");
        (await _driver.InspectAsync(restored)).State.Should().Be(LiveState.NotFound);
        _store.Verify(manifest).Should().Contain("memory-ranges is missing");
    }

    [Test]
    public async Task CheckRestorable_WritableVolumeOrInterfaces_Refused()
    {
        var source = _scratch.Vm("ch-rw");
        await _driver.StartAsync(source);

        var manifest = await SnapshotHelper.TakeAsync(_store, _driver, source, "ch-rw");

        (await _driver.CheckRestorableAsync(manifest)).Should().Contain("writable volumes (root)");
        var withNic = manifest with { Disks = [], Spec = manifest.Spec with { Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0" }] } };
        (await _driver.CheckRestorableAsync(withNic)).Should().Contain("taps by name");
    }
}

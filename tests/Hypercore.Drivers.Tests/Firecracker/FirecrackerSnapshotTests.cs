using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Tests.Snapshots;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Hypercore.Snapshots;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Firecracker;

/// <summary>
/// Snapshot and restore through firecracker's snapshot API (PUT /snapshot/create, PUT /snapshot/load), against the
/// stand-in, which writes real files and loads them back into a fresh process.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class FirecrackerSnapshotTests
{
    private Scratch _scratch = null!;
    private FirecrackerDriver _driver = null!;
    private SnapshotStore _store = null!;

    [SetUp]
    public void SetUp()
    {
        _scratch = new Scratch();
        _store = new SnapshotStore(Path.Combine(_scratch.Root, "snapshots"));
        _driver = new FirecrackerDriver(Options.Create(new FirecrackerOptions
        {
            BinaryPath = StandIns.Firecracker,
            RuntimeDirectory = _scratch.RuntimeDirectory,
            RequireKvm = false,
            StartTimeout = TimeSpan.FromSeconds(60),
        }), TimeProvider.System, NullLogger<FirecrackerDriver>.Instance);
    }

    [TearDown]
    public async Task TearDown()
    {
        _driver.Dispose(); // its pidfd exit watch (issue 15)
        await _scratch.DisposeAsync();
    }

    private MicroVm ReadOnlyRootVm(string id) => _scratch.Vm(id, s => s with { RootVolume = s.RootVolume! with { IsReadOnly = true } });

    private UnixSocketApi Api(MicroVm vm) =>
        new(Path.Combine(_scratch.VmDirectory(vm), "api.sock"), new ApiPolicy(TimeSpan.FromSeconds(10), 3, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)), TimeProvider.System);

    [Test]
    public async Task Snapshot_RunningVm_WritesStateAndMemoryAndRestoreLoadsThemIntoAFreshProcess()
    {
        var source = ReadOnlyRootVm("fc-src");
        await _driver.StartAsync(source);

        var manifest = await SnapshotHelper.TakeAsync(_store, _driver, source, "fc1");

        manifest.HypervisorVersion.Should().Be("1.10.1");
        manifest.WasRunning.Should().BeTrue();
        manifest.Files.Select(f => f.Name).Should().BeEquivalentTo(["memory", "vmstate"]);
        manifest.Files.Should().OnlyContain(f => f.Sha256 != null && f.Size > 0);
        (await _driver.InspectAsync(source)).State.Should().Be(LiveState.Running, "the source is resumed after its snapshot");
        (await _driver.CheckRestorableAsync(manifest)).Should().BeNull();

        var restored = ReadOnlyRootVm("fc-restored");
        var info = await _driver.StartAsync(SnapshotHelper.RestoreContext(_store, restored, manifest));

        info.State.Should().Be(LiveState.Running, "resume_vm is true for a VM that should run");
        using var api = Api(restored);
        var config = (await api.GetAsync("/vm/config", default)).Json!;
        config["machine-config"]!["mem_size_mib"]!.GetValue<int>().Should().Be(256);
        config["drives"]!.AsArray().Should().ContainSingle().Which!["path_on_host"]!.GetValue<string>().Should().Be(_scratch.RootDisk);
        info.Pid.Should().NotBe((await _driver.InspectAsync(source)).Pid);
    }

    [Test]
    public async Task Restore_DesiredPaused_LoadsWithoutResuming()
    {
        var source = ReadOnlyRootVm("fc-src-p");
        await _driver.StartAsync(source);
        var manifest = await SnapshotHelper.TakeAsync(_store, _driver, source, "fc-p");

        var restored = ReadOnlyRootVm("fc-p-restored") with { };
        restored = restored with { Spec = restored.Spec with { State = DesiredState.Paused } };
        var info = await _driver.StartAsync(SnapshotHelper.RestoreContext(_store, restored, manifest));

        info.State.Should().Be(LiveState.Paused);
    }

    [Test]
    public async Task Restore_StateFileDamagedBehindTheStepsBack_FailsWithTheVmmsWordsAndLeavesNothing()
    {
        var source = ReadOnlyRootVm("fc-src-c");
        await _driver.StartAsync(source);
        var manifest = await SnapshotHelper.TakeAsync(_store, _driver, source, "fc-c");
        await File.WriteAllTextAsync(Path.Combine(_store.PathOf("fc-c"), "vmstate"), "garbage");

        var restored = ReadOnlyRootVm("fc-c-restored");
        var act = () => _driver.StartAsync(SnapshotHelper.RestoreContext(_store, restored, manifest));

        var ex = (await act.Should().ThrowAsync<DriverException>()).Which;
        ex.Reason.Should().Be("SnapshotRestoreFailed");
        ex.Message.Should().Contain("PUT /snapshot/load failed (400)").And.Contain("Failed to get snapshot state from file");
        (await _driver.InspectAsync(restored)).State.Should().Be(LiveState.NotFound);
        _store.Verify(manifest).Should().Contain("damaged", "the restore step would have refused it before starting anything");
    }

    [Test]
    public async Task CheckRestorable_WritableVolume_RefusesNamingIt()
    {
        var source = _scratch.Vm("fc-rw"); // root volume writable
        await _driver.StartAsync(source);

        var manifest = await SnapshotHelper.TakeAsync(_store, _driver, source, "fc-rw");

        manifest.Disks.Should().ContainSingle().Which.VolumeId.Should().Be("root");
        File.ReadAllText(Path.Combine(_store.PathOf("fc-rw"), "disk-root.img")).Should().Be("rootfs\n");
        (await _driver.CheckRestorableAsync(manifest)).Should().Contain("writable volumes (root)");
    }

    [Test]
    public async Task Snapshot_NoVm_IsNotRunning()
    {
        var act = () => _driver.SnapshotAsync(_scratch.Vm("fc-none"), _store.BeginWrite("x"));

        (await act.Should().ThrowAsync<DriverException>()).Which.Reason.Should().Be("NotRunning");
    }
}

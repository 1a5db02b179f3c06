using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Operations;
using Hypercore.Reconciliation;
using Hypercore.Snapshots;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Core.Tests.Snapshots;

/// <summary>
/// What Core keeps about snapshots in a VM's status: the snapshot its current run was restored from (written by the
/// restore step with the start) and the latest snapshot taken of it (written by the SnapshotManager), and that a
/// snapshot owned by a MicroVMSnapshot is deleted only by its owner.
/// </summary>
public sealed class SnapshotStatusTests
{
    private DirectoryInfo _root = null!;
    private InMemoryStore _store = null!;
    private SnapshotDriver _driver = null!;
    private DriverRegistry _drivers = null!;
    private SnapshotManager _manager = null!;

    [SetUp]
    public void SetUp()
    {
        _root = Directory.CreateTempSubdirectory("hypercore-snapstatus-");
        _store = new InMemoryStore();
        _driver = new SnapshotDriver(new FakeDriver("fake"));
        _drivers = new DriverRegistry([_driver], "fake");
        _manager = new SnapshotManager(new SnapshotStore(Path.Combine(_root.FullName, "snapshots")), _drivers, TimeProvider.System,
            NullLogger<SnapshotManager>.Instance, _store);
    }

    [TearDown]
    public void TearDown() => _root.Delete(recursive: true);

    [Test]
    public async Task Create_RunningVm_RecordsLastSnapshotAndTimeInItsStatus()
    {
        var vm = await RunningAsync("web1");

        var manifest = await _manager.CreateAsync(vm, "snap1", CancellationToken.None);

        var after = (await _store.GetAsync(vm.Key))!;
        after.Status.LastSnapshot.Should().Be("snap1");
        after.Status.LastSnapshotTime.Should().Be(manifest.CreatedAt);
        after.Status.Phase.Should().Be(Phase.Running, "only the snapshot fields change");
        after.Status.Pid.Should().Be(vm.Status.Pid);
    }

    [Test]
    public async Task Start_WithRestoreFrom_RecordsRestoredFrom_AndABootDoesNot()
    {
        var source = await RunningAsync("web1");
        await _manager.CreateAsync(source, "snap1", CancellationToken.None);
        var reconciler = new Reconciler(_store, _drivers, TimeProvider.System, Options.Create(new ReconcilerOptions { NodeName = "node-a" }),
            NullLogger<Reconciler>.Instance, [new SnapshotRestoreStep(_manager.Store, _drivers, NullLogger<SnapshotRestoreStep>.Instance)]);
        var clone = await _store.CreateAsync(Spec("clone") with { RestoreFrom = "snap1" });
        var booted = await _store.CreateAsync(Spec("booted"));

        await reconciler.ReconcileAsync(clone.Key, CancellationToken.None);
        await reconciler.ReconcileAsync(booted.Key, CancellationToken.None);

        var restored = (await _store.GetAsync(clone.Key))!;
        restored.Status.Phase.Should().Be(Phase.Running);
        restored.Status.RestoredFrom.Should().Be("snap1");
        (await _store.GetAsync(booted.Key))!.Status.RestoredFrom.Should().BeNull();
    }

    [Test]
    public async Task Start_RestoreFromASnapshotNotOnThisNode_FailedWithWhereToRunIt_NothingStarted()
    {
        var reconciler = new Reconciler(_store, _drivers, TimeProvider.System, Options.Create(new ReconcilerOptions { NodeName = "node-a" }),
            NullLogger<Reconciler>.Instance, [new SnapshotRestoreStep(_manager.Store, _drivers, NullLogger<SnapshotRestoreStep>.Instance)]);
        var clone = await _store.CreateAsync(Spec("clone") with { RestoreFrom = "elsewhere" });

        await reconciler.ReconcileAsync(clone.Key, CancellationToken.None);

        var failed = (await _store.GetAsync(clone.Key))!;
        failed.Status.Phase.Should().Be(Phase.Failed);
        var ready = failed.Status.FindCondition(Conditions.Ready)!;
        ready.Reason.Should().Be(SnapshotRestoreStep.ReasonNotFound);
        ready.Message.Should().Contain("\"elsewhere\" not found").And.Contain("status.node");
        failed.Status.RestoredFrom.Should().BeNull();
        _driver.Inner.CallCount("start").Should().Be(0);
    }

    [Test]
    public async Task Delete_SnapshotOwnedByAMicroVmSnapshot_OnlyByItsOwner()
    {
        var vm = await RunningAsync("web1");
        var manifest = await _manager.CreateAsync(vm, "snap1", CancellationToken.None, owner: "uid-of-the-resource");
        manifest.Owner.Should().Be("uid-of-the-resource");

        var byApi = () => _manager.Delete(manifest);
        var byOther = () => _manager.Delete(manifest, owner: "another-uid");

        byApi.Should().Throw<FailedPreconditionException>().WithMessage("*kubectl delete microvmsnapshot snap1 -n default*");
        byOther.Should().Throw<FailedPreconditionException>();
        _manager.Store.Exists("snap1").Should().BeTrue();
        _manager.Delete(manifest, owner: "uid-of-the-resource");
        _manager.Store.Exists("snap1").Should().BeFalse();
    }

    private static MicroVmSpec Spec(string id) => new() { Id = id, Provider = "fake", Kernel = new KernelSpec { Image = "/k" } };

    private async Task<MicroVm> RunningAsync(string id)
    {
        var vm = await _store.CreateAsync(Spec(id));
        _driver.Inner.SetLive(vm.Uid, LiveState.Running, pid: 4242);
        return await _store.UpdateStatusAsync(vm.Key, vm.Status with { Phase = Phase.Running, Pid = 4242 }, vm.ResourceVersion);
    }

    /// <summary>The Core fake driver, able to write a snapshot (a real file) and restore one.</summary>
    private sealed class SnapshotDriver(FakeDriver inner) : IHypervisorDriver, ISnapshotDriver
    {
        public FakeDriver Inner { get; } = inner;

        public string Name => Inner.Name;

        public DriverCapabilities Capabilities => Inner.Capabilities | DriverCapabilities.Snapshot;

        public Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default) => Inner.CheckAvailabilityAsync(cancellationToken);

        public Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default) => Inner.ListAsync(cancellationToken);

        public Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default) => Inner.InspectAsync(vm, cancellationToken);

        public Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default) => Inner.StartAsync(vm, cancellationToken);

        public Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default) => Inner.PauseAsync(vm, cancellationToken);

        public Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default) => Inner.ResumeAsync(vm, cancellationToken);

        public Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default) => Inner.StopAsync(vm, gracePeriod, cancellationToken);

        public Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default) => Inner.CleanupAsync(vm, cancellationToken);

        public string ConsoleLogPath(MicroVm vm) => Inner.ConsoleLogPath(vm);

        public async Task<SnapshotTaken> SnapshotAsync(MicroVm vm, string directory, CancellationToken cancellationToken = default)
        {
            await File.WriteAllTextAsync(Path.Combine(directory, "memory.state"), "memory of " + vm.Uid, cancellationToken);
            return new SnapshotTaken { HypervisorVersion = "fake 1", WasRunning = true, StateFiles = ["memory.state"] };
        }

        public Task<string?> CheckRestorableAsync(SnapshotManifest manifest, CancellationToken cancellationToken = default) => Task.FromResult<string?>(null);
    }
}

using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Snapshots;

namespace Hypercore.Drivers.Tests.Snapshots;

/// <summary>What the snapshot manager and the restore step do around a driver, without the daemon.</summary>
internal static class SnapshotHelper
{
    public static async Task<SnapshotManifest> TakeAsync(SnapshotStore store, IHypervisorDriver driver, MicroVm vm, string name)
    {
        var staging = store.BeginWrite(name);
        var taken = await ((ISnapshotDriver)driver).SnapshotAsync(vm, staging);
        var (files, allocated) = SnapshotStore.Describe(staging, taken.StateFiles);
        var manifest = new SnapshotManifest
        {
            Name = name,
            Namespace = vm.Spec.Namespace,
            SourceId = vm.Spec.Id,
            SourceUid = vm.Uid,
            Provider = driver.Name,
            HypervisorVersion = taken.HypervisorVersion,
            Machine = taken.Machine,
            Spec = vm.Spec,
            CreatedAt = DateTimeOffset.UnixEpoch,
            WasRunning = taken.WasRunning,
            Files = files,
            Disks = taken.Disks,
            SizeBytes = allocated,
        };
        store.Commit(staging, manifest).Should().BeTrue();
        return manifest;
    }

    public static StartContext RestoreContext(SnapshotStore store, MicroVm vm, SnapshotManifest manifest)
    {
        var context = new StartContext(vm) { Vm = SnapshotRestoreStep.RestoredView(vm, manifest) };
        context.Items[SnapshotRestore.ItemKey] = new SnapshotRestore(store.PathOf(manifest.Name), manifest);
        return context;
    }
}

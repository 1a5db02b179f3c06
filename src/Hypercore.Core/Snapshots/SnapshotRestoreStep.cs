using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging;

namespace Hypercore.Snapshots;

/// <summary>
/// Before every start of a VM with <see cref="MicroVmSpec.RestoreFrom"/>: finds the snapshot, checks it belongs to
/// the VM's namespace and provider, that every file is there with its size and the state files' sha256, and that
/// this node's hypervisor can load it; only then does the driver get a <see cref="SnapshotRestore"/> and a view of
/// the VM with the snapshot's hardware. Any failure is a Failed phase with a condition saying why, and nothing is
/// started. Runs before the images step (200), which then resolves the snapshot's kernel like any other.
/// </summary>
public sealed partial class SnapshotRestoreStep(SnapshotStore store, DriverRegistry drivers, ILogger<SnapshotRestoreStep> log) : IStartStep
{
    public const string ReasonNotFound = "SnapshotNotFound";
    public const string ReasonCorrupt = "SnapshotCorrupt";
    public const string ReasonIncompatible = "SnapshotIncompatible";

    public string Name => "snapshots";

    public int Order => 150;

    public async Task<StartStepResult> PrepareAsync(StartContext context, CancellationToken cancellationToken)
    {
        var vm = context.Vm;
        if (string.IsNullOrEmpty(vm.Spec.RestoreFrom))
        {
            return StartStepResult.Proceed(s => s.RestoredFrom is null ? s : s with { RestoredFrom = null });
        }

        var name = vm.Spec.RestoreFrom;
        var result = await CheckAsync(vm, name, cancellationToken);
        if (result.Failure is { } failure)
        {
            LogRefused(vm.Key.ToString(), name, failure.Message);
            return failure;
        }

        var manifest = result.Manifest!;
        context.Vm = RestoredView(vm, manifest);
        context.Items[SnapshotRestore.ItemKey] = new SnapshotRestore(store.PathOf(name), manifest);
        LogRestoring(vm.Key.ToString(), name, manifest.SourceId);
        return StartStepResult.Proceed(s => s with { RestoredFrom = name }); // in the Running write of this start (claim + Provisioning are one write before the steps)
    }

    /// <summary>
    /// The VM as the driver starts it: its own identity, labels, metadata and policies, with the snapshot's hardware
    /// (kernel, initrd, vcpus, memory, volumes, interfaces, metadata), because the saved state only loads into the same device set.
    /// </summary>
    public static MicroVm RestoredView(MicroVm vm, SnapshotManifest manifest)
    {
        var source = manifest.Spec;
        return vm with
        {
            Spec = vm.Spec with
            {
                Kernel = source.Kernel,
                Initrd = source.Initrd,
                Vcpu = source.Vcpu,
                MemoryInMb = source.MemoryInMb,
                RootVolume = source.RootVolume,
                AdditionalVolumes = source.AdditionalVolumes,
                Interfaces = source.Interfaces,
                // The metadata decides whether the VM gets a NoCloud seed disk (QEMU, Cloud Hypervisor), a device of
                // its own: a snapshot of a VM that had one only loads into a VM that has one too, and vice versa.
                Metadata = source.Metadata,
            },
        };
    }

    public Task ReleaseAsync(MicroVm vm, CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task<(StartStepResult? Failure, SnapshotManifest? Manifest)> CheckAsync(MicroVm vm, string name, CancellationToken ct)
    {
        if (store.Read(name) is not { } manifest)
        {
            // Snapshots live on the node that took them: on Kubernetes, status.node of the MicroVMSnapshot says which.
            return (StartStepResult.Fail(ReasonNotFound,
                $"snapshot \"{name}\" not found under {store.Root} on this node; `vis snapshot ls` lists the snapshots " +
                "(a MicroVMSnapshot's files are on the node in its status.node: run this VM there)"), null);
        }

        if (manifest.Namespace != vm.Spec.Namespace)
        {
            // Memory holds the source guest's secrets: a snapshot never leaves its namespace.
            return (StartStepResult.Fail(ReasonNotFound, $"snapshot \"{name}\" belongs to namespace \"{manifest.Namespace}\"; only VMs in that namespace can start from it"), null);
        }

        var provider = drivers.Resolve(vm.Spec.Provider);
        if (provider != manifest.Provider)
        {
            return (StartStepResult.Fail(ReasonIncompatible, $"snapshot \"{name}\" was taken by provider \"{manifest.Provider}\"; this VM asks for \"{provider}\": set provider to \"{manifest.Provider}\""), null);
        }

        if (!drivers.TryGet(provider, out var driver) || Unwrap(driver) is not ISnapshotDriver snapshots)
        {
            return (StartStepResult.Fail(ReasonIncompatible, $"provider \"{provider}\" cannot restore snapshots on this node"), null);
        }

        if (store.Verify(manifest) is { } damaged)
        {
            return (StartStepResult.Fail(ReasonCorrupt, damaged), null);
        }

        if (await snapshots.CheckRestorableAsync(manifest, ct) is { } incompatible)
        {
            return (StartStepResult.Fail(ReasonIncompatible, incompatible), null);
        }

        return (null, manifest);
    }

    internal static IHypervisorDriver Unwrap(IHypervisorDriver driver) => driver is InstrumentedDriver i ? i.Inner : driver;

    [LoggerMessage(1150, LogLevel.Information, "{Key}: restoring from snapshot {Snapshot} (taken of {Source})")]
    private partial void LogRestoring(string key, string snapshot, string source);

    [LoggerMessage(1151, LogLevel.Warning, "{Key}: cannot restore from snapshot {Snapshot}: {Message}")]
    private partial void LogRefused(string key, string snapshot, string message);
}

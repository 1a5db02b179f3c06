using Hypercore.MicroVms;
using Hypercore.Reconciliation;

namespace Hypercore.Drivers.Vmm;

/// <summary>
/// A spec made ready for one hypervisor by <see cref="VmmDriver"/>: host paths checked by the host-path policy and
/// resolved (kernel.filename included), scratch disks made, taps created, the kernel command line composed
/// (with kernel.add_network_config's "ip=" arguments). A driver turns only this into its launch arguments or API calls.
/// </summary>
public sealed record PreparedSpec
{
    public required MicroVm Vm { get; init; }

    public MicroVmSpec Spec => Vm.Spec;

    /// <summary>What the reconciler's start steps prepared (trusted paths, feature items).</summary>
    public StartContext? Context { get; init; }

    /// <summary>Resolved kernel path; null for a hypervisor that boots no kernel for this spec (a unikernel disk).</summary>
    public string? KernelPath { get; init; }

    public string? InitrdPath { get; init; }

    /// <summary>Root volume first (if any), then the additional volumes in spec order.</summary>
    public IReadOnlyList<PreparedVolume> Volumes { get; init; } = [];

    public IReadOnlyList<PreparedNic> Nics { get; init; } = [];

    public string KernelCmdline { get; init; } = "";

    // Guest bootstrap (cloud-init).

    /// <summary>
    /// The cloud-init NoCloud files (meta-data, user-data, ...) when the VM gets any, else null. On a seed-disk
    /// provider they are already on the disk among <see cref="Volumes"/>; Firecracker serves them from MMDS.
    /// </summary>
    public IReadOnlyDictionary<string, string>? CloudInit { get; init; }
}

/// <summary>A volume with its host path resolved (a scratch disk's file in the VM directory).</summary>
public sealed record PreparedVolume(string Id, string HostPath, bool IsReadOnly, bool IsRoot, bool IsScratch)
{
    /// <summary>
    /// The format the VMM opens the file with: raw unless whoever prepared the volume checked it may be opened as
    /// qcow2 (never by file name alone: a qcow2 header names files the VMM would open; see <see cref="DiskFormats"/>).
    /// </summary>
    public string Format { get; init; } = DiskFormats.Raw;

    /// <summary>
    /// Whether the VMM may open the backing file the qcow2 header names: only for the daemon's own overlay of a cached
    /// image disk. Otherwise a qcow2 is opened with backing files off, so a header rewritten after the check still
    /// reaches no other file.
    /// </summary>
    public bool UsesBacking { get; init; }

    /// <summary>This volume with the format <see cref="DiskFormats.ForUntrusted"/> allows for its file.</summary>
    public PreparedVolume Checked(string field, string? allowedBacking = null)
    {
        var (format, usesBacking) = DiskFormats.ForUntrusted(HostPath, field, allowedBacking);
        return this with { Format = format, UsesBacking = usesBacking };
    }
}

/// <summary>
/// An interface with the tap made for it and its MAC (given, or derived from the uid). For a MACVTAP, Tap is the
/// macvtap's name and <paramref name="CharDevice"/> its /dev/tapN, which the VMM is handed as an open fd.
/// </summary>
public sealed record PreparedNic(string DeviceId, string Tap, string Mac, NetworkInterfaceSpec Spec, string? CharDevice = null);

/// <summary>What a driver starts for a prepared spec: the executable, its arguments and how to recognise it later.</summary>
public sealed record VmmLaunch
{
    /// <summary>The file executed (the VMM, or a wrapper such as the jailer).</summary>
    public required string Executable { get; init; }

    public required IReadOnlyList<string> Arguments { get; init; }

    /// <summary>API or QMP socket as seen from the host (removed before launch and on stop).</summary>
    public required string ControlSocket { get; init; }

    /// <summary>A string that must appear in the process command line (see <see cref="VmRecord.ArgvMarker"/>).</summary>
    public required string ArgvMarker { get; init; }

    /// <summary>Where the process's stdout and stderr go; default vmm.log in the VM directory.</summary>
    public string? OutputLog { get; init; }

    /// <summary>Shown as <see cref="VmRuntimeInfo.Detail"/> for this instance.</summary>
    public string? Detail { get; init; }

    public IReadOnlyDictionary<string, string> Extra { get; init; } = new Dictionary<string, string>();

    /// <summary>Files the launcher opens read-write as fds 3, 4, ... for the VMM to inherit (a macvtap's /dev/tapN).</summary>
    public IReadOnlyList<string> InheritedFiles { get; init; } = [];
}

/// <summary>What a hypervisor reports of a live process.</summary>
public readonly record struct VmmState(LiveState State, ExitKind Exit = ExitKind.None, string? Detail = null);

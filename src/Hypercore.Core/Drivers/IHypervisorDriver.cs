using Hypercore.MicroVms;
using Hypercore.Reconciliation;

namespace Hypercore.Drivers;

/// <summary>
/// A hypervisor behind one interface. Only the reconciler calls it. Every method is idempotent and keyed by the
/// VM's uid, so a daemon restart can find and adopt what a previous run started.
/// </summary>
public interface IHypervisorDriver
{
    /// <summary>Provider name used in specs: "qemu", "firecracker", "cloud-hypervisor", "unikernel".</summary>
    string Name { get; }

    DriverCapabilities Capabilities { get; }

    /// <summary>Whether this node can run the provider (binary present and runnable). Never throws.</summary>
    Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default);

    /// <summary>Everything this driver finds alive on the node (for adoption at daemon start).</summary>
    Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>Live state of one VM; <see cref="LiveState.NotFound"/> when nothing exists for it.</summary>
    Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default);

    /// <summary>Creates and boots the VM. Returns when the hypervisor reports it running (not when the guest is up).</summary>
    /// <exception cref="DriverException">the VM could not be started; the message is shown in status.</exception>
    Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default);

    /// <summary>
    /// Starts the VM as prepared by the reconciler's start steps (<see cref="IStartStep"/>): <see cref="StartContext.Vm"/>
    /// is the view to boot, <see cref="StartContext.TrustedPaths"/> the files the steps made for it. A driver that
    /// does not care about the context starts <see cref="StartContext.Vm"/>.
    /// </summary>
    Task<VmRuntimeInfo> StartAsync(StartContext context, CancellationToken cancellationToken = default) =>
        StartAsync(context.Vm, cancellationToken);

    Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default);

    Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default);

    /// <summary>Asks the guest to power off, waits up to <paramref name="gracePeriod"/>, then kills. Returns when no process is left.</summary>
    Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default);

    /// <summary>Removes every file, socket, tap and process the driver made for the VM. Safe to call twice.</summary>
    Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default);

    /// <summary>
    /// Where the VM's serial console is (or will be) written: derived from the VM's uid and the driver's runtime
    /// directory, never from stored status (which a caller may be able to write). The file may not exist yet; the
    /// previous part after a rotation is this path plus ".1". Pure: no I/O, never throws for a valid uid.
    /// </summary>
    string ConsoleLogPath(MicroVm vm);
}

/// <summary>What a provider can do, so the reconciler can refuse the rest with a clear condition.</summary>
[Flags]
public enum DriverCapabilities
{
    None = 0,
    Pause = 1,
    GracefulStop = 2,
    MetadataService = 4,
    Tap = 8,
    Macvtap = 16,
    Snapshot = 32,
    Initrd = 64,
    BlockDevices = 128,
}

public sealed record DriverAvailability(bool Available, string Detail)
{
    public static DriverAvailability Ok(string detail) => new(true, detail);

    public static DriverAvailability Unavailable(string detail) => new(false, detail);
}

public enum LiveState
{
    /// <summary>No process and no leftovers for this VM.</summary>
    NotFound,

    /// <summary>The hypervisor exists but the VM has not booted yet.</summary>
    Created,
    Running,
    Paused,

    /// <summary>The process ended or the guest powered off; <see cref="VmRuntimeInfo.Exit"/> says how.</summary>
    Exited,

    /// <summary>Could not tell (e.g. control socket busy). Never treated as dead.</summary>
    Unknown,
}

public enum ExitKind
{
    None,

    /// <summary>The guest powered itself off.</summary>
    GuestShutdown,

    /// <summary>The process died (killed from outside, crashed).</summary>
    Crashed,
}

/// <summary>What a driver sees of one VM.</summary>
public sealed record VmRuntimeInfo
{
    public required string Uid { get; init; }

    public required LiveState State { get; init; }

    public ExitKind Exit { get; init; }

    public int? Pid { get; init; }

    public string? ConsoleLogPath { get; init; }

    public DateTimeOffset? BootTime { get; init; }

    /// <summary>Detail worth showing: accelerator used, fault message, exit detail.</summary>
    public string? Detail { get; init; }

    public static VmRuntimeInfo NotFound(string uid) => new() { Uid = uid, State = LiveState.NotFound };
}

/// <summary>A driver failure whose message a person can act on; it ends up in the VM's conditions.</summary>
public class DriverException(string reason, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>Condition reason, e.g. "ProviderUnavailable", "KernelNotFound", "HypervisorError".</summary>
    public string Reason { get; } = reason;
}

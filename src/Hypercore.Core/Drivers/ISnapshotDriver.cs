using Hypercore.MicroVms;
using Hypercore.Snapshots;

namespace Hypercore.Drivers;

/// <summary>
/// A driver that can save a live VM (memory, device state, its writable disks) into a directory and start a VM from
/// it again. Restore goes through the ordinary start: the reconciler's snapshot start step puts a
/// <see cref="SnapshotRestore"/> into <see cref="Reconciliation.StartContext.Items"/> under
/// <see cref="SnapshotRestore.ItemKey"/>, and the driver boots from it instead of from the kernel.
/// </summary>
public interface ISnapshotDriver
{
    /// <summary>
    /// Saves the running or paused VM into <paramref name="directory"/> (exists, empty) and leaves the VM as it
    /// was (running again if it was running). Throws <see cref="DriverException"/> (reason NotRunning when there
    /// is no live VM).
    /// </summary>
    Task<SnapshotTaken> SnapshotAsync(MicroVm vm, string directory, CancellationToken cancellationToken = default);

    /// <summary>Why this node cannot restore the snapshot (another hypervisor version, say), or null. Never throws.</summary>
    Task<string?> CheckRestorableAsync(SnapshotManifest manifest, CancellationToken cancellationToken = default);
}

/// <summary>What a driver wrote: files are names relative to the snapshot directory.</summary>
public sealed record SnapshotTaken
{
    /// <summary>Version of the hypervisor that wrote the state, as <see cref="ISnapshotDriver.CheckRestorableAsync"/> compares it.</summary>
    public required string HypervisorVersion { get; init; }

    /// <summary>Machine and accelerator the state belongs to, e.g. "microvm accel=tcg".</summary>
    public string Machine { get; init; } = "";

    public bool WasRunning { get; init; }

    /// <summary>Memory and device state files (checked by sha256 before every restore).</summary>
    public required IReadOnlyList<string> StateFiles { get; init; }

    /// <summary>Copies of the writable disks, by volume id.</summary>
    public IReadOnlyList<SnapshotDisk> Disks { get; init; } = [];
}

using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Snapshots;

namespace Hypercore.Api.Tests.Fakes;

/// <summary>
/// A "qemu" that can snapshot: writes a small state file and records which VMs it saved. Restores are the real
/// drivers' business (tests/Hypercore.Drivers.Qemu.Tests); the API only takes, lists and deletes.
/// </summary>
public sealed class FakeSnapshotDriver(string name) : IHypervisorDriver, ISnapshotDriver
{
    private readonly FakeDriver _inner = new(name, DriverCapabilities.Pause | DriverCapabilities.Snapshot);

    public List<string> Saved { get; } = [];

    /// <summary>When set, the next snapshot fails with this DriverException reason.</summary>
    public string? FailWith { get; set; }

    public string Name => _inner.Name;

    public DriverCapabilities Capabilities => _inner.Capabilities;

    public async Task<SnapshotTaken> SnapshotAsync(MicroVm vm, string directory, CancellationToken cancellationToken = default)
    {
        if (FailWith is { } reason)
        {
            throw new DriverException(reason, $"fake {reason}");
        }

        await File.WriteAllTextAsync(Path.Combine(directory, "memory.state"), $"state of {vm.Uid}", cancellationToken);
        Saved.Add(vm.Spec.Id);
        return new SnapshotTaken { HypervisorVersion = "1.0.0", Machine = "fake", WasRunning = true, StateFiles = ["memory.state"] };
    }

    public Task<string?> CheckRestorableAsync(SnapshotManifest manifest, CancellationToken cancellationToken = default) => Task.FromResult<string?>(null);

    public Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default) => _inner.CheckAvailabilityAsync(cancellationToken);

    public Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default) => _inner.ListAsync(cancellationToken);

    public Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default) => _inner.InspectAsync(vm, cancellationToken);

    public Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default) => _inner.StartAsync(vm, cancellationToken);

    public Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default) => _inner.PauseAsync(vm, cancellationToken);

    public Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default) => _inner.ResumeAsync(vm, cancellationToken);

    public Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default) => _inner.StopAsync(vm, gracePeriod, cancellationToken);

    public Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default) => _inner.CleanupAsync(vm, cancellationToken);

    public string ConsoleLogPath(MicroVm vm) => _inner.ConsoleLogPath(vm);
}

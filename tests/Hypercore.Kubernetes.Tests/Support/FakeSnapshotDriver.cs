using System.Collections.Concurrent;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Snapshots;

namespace Hypercore.Kubernetes.Tests.Support;

/// <summary>
/// A hand-written driver whose snapshots are real files: it writes a memory-state file naming the VM into the
/// snapshot directory, so the SnapshotManager hashes, commits and deletes real files. Its VMs are "live" when the
/// test says so (<see cref="Live"/>); it never starts anything.
/// </summary>
public sealed class FakeSnapshotDriver(string name) : IHypervisorDriver, ISnapshotDriver
{
    private readonly ConcurrentQueue<string> _calls = new();

    public string Name { get; } = name;

    public DriverCapabilities Capabilities => DriverCapabilities.Pause | DriverCapabilities.Snapshot;

    /// <summary>Uids of VMs this driver reports as running.</summary>
    public ConcurrentDictionary<string, bool> Live { get; } = new();

    /// <summary>Snapshot calls in order, as "Snapshot web1".</summary>
    public IReadOnlyList<string> Calls => _calls.ToList();

    public Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult(DriverAvailability.Ok("in-memory snapshot test driver"));

    public Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<VmRuntimeInfo>>(Live.Keys.Select(uid => new VmRuntimeInfo { Uid = uid, State = LiveState.Running }).ToList());

    public Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        Task.FromResult(Live.ContainsKey(vm.Uid) ? new VmRuntimeInfo { Uid = vm.Uid, State = LiveState.Running } : VmRuntimeInfo.NotFound(vm.Uid));

    public Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        throw new DriverException("NotSupported", "this test driver only takes snapshots");

    public Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default) => Task.CompletedTask;

    public Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default) => Task.CompletedTask;

    public Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default) => Task.CompletedTask;

    public Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default) => Task.CompletedTask;

    public string ConsoleLogPath(MicroVm vm) => Path.Combine(Path.GetTempPath(), "hypercore-fake-snapshot-driver", vm.Uid, "console.log");

    public async Task<SnapshotTaken> SnapshotAsync(MicroVm vm, string directory, CancellationToken cancellationToken = default)
    {
        _calls.Enqueue("Snapshot " + vm.Spec.Id);
        if (!Live.ContainsKey(vm.Uid))
        {
            throw new DriverException("NotRunning", $"no live VM {vm.Key}");
        }

        await File.WriteAllTextAsync(Path.Combine(directory, "memory.state"), $"memory of {vm.Key} ({vm.Uid})\n" + new string('x', 8192), cancellationToken);
        return new SnapshotTaken { HypervisorVersion = "fake 1.0", Machine = "fake", WasRunning = true, StateFiles = ["memory.state"] };
    }

    public Task<string?> CheckRestorableAsync(SnapshotManifest manifest, CancellationToken cancellationToken = default) =>
        Task.FromResult<string?>(null);
}

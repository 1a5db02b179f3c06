using System.Collections.Concurrent;
using Hypercore.Drivers;
using Hypercore.MicroVms;

namespace Hypercore.Kubernetes.Tests.Support;

/// <summary>A hand-written driver that keeps VM state in memory: enough to run the real reconciler against the Kubernetes store.</summary>
public sealed class FakeDriver(string name) : IHypervisorDriver
{
    private readonly ConcurrentDictionary<string, LiveState> _vms = new();
    private readonly ConcurrentQueue<string> _calls = new();
    private int _nextPid = 1000;

    public string Name { get; } = name;

    public DriverCapabilities Capabilities =>
        DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.Initrd | DriverCapabilities.Tap | DriverCapabilities.BlockDevices;

    /// <summary>Calls in order, as "Start hello", "Pause hello"...</summary>
    public IReadOnlyList<string> Calls => _calls.ToList();

    public Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult(DriverAvailability.Ok("in-memory test driver"));

    public Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<VmRuntimeInfo>>(_vms.Select(kv => new VmRuntimeInfo { Uid = kv.Key, State = kv.Value }).ToList());

    public Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        Task.FromResult(_vms.TryGetValue(vm.Uid, out var state)
            ? new VmRuntimeInfo { Uid = vm.Uid, State = state, Pid = vm.Status.Pid }
            : VmRuntimeInfo.NotFound(vm.Uid));

    public Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        _calls.Enqueue("Start " + vm.Spec.Id);
        _vms[vm.Uid] = LiveState.Running;
        return Task.FromResult(new VmRuntimeInfo
        {
            Uid = vm.Uid,
            State = LiveState.Running,
            Pid = Interlocked.Increment(ref _nextPid),
            BootTime = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero),
            Detail = "fake",
        });
    }

    public Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        _calls.Enqueue("Pause " + vm.Spec.Id);
        _vms[vm.Uid] = LiveState.Paused;
        return Task.CompletedTask;
    }

    public Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        _calls.Enqueue("Resume " + vm.Spec.Id);
        _vms[vm.Uid] = LiveState.Running;
        return Task.CompletedTask;
    }

    public Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default)
    {
        if (_vms.TryRemove(vm.Uid, out _))
        {
            _calls.Enqueue("Stop " + vm.Spec.Id);
        }

        return Task.CompletedTask;
    }

    public Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        _calls.Enqueue("Cleanup " + vm.Spec.Id);
        return Task.CompletedTask;
    }

    /// <summary>Where this fake's VMs "write" their console: a directory the test owns, never stored status.</summary>
    public string RuntimeDirectory { get; set; } = Path.Combine(Path.GetTempPath(), "hypercore-fake-" + name);

    public string ConsoleLogPath(MicroVm vm) => Path.Combine(RuntimeDirectory, vm.Uid, "console.log");

    public bool IsRunning(string uid) => _vms.TryGetValue(uid, out var s) && s == LiveState.Running;
}

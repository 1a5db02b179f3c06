using Hypercore.Drivers;
using Hypercore.MicroVms;

namespace Hypercore.Benchmarks.NoOp;

/// <summary>
/// A driver that starts nothing, for the in-process benchmarks only: it measures the controller, not a hypervisor.
/// Start marks a VM running; with <see cref="AllRunning"/> every VM is reported running from the start (a node
/// whose VMs are all up, as after a daemon restart).
/// </summary>
/// <remarks>
/// It keeps as little per VM as it can (issue 15, twentieth pass): the running VMs' uids in one set, and an answer
/// made per call. It used to keep a precomputed answer per VM (a dictionary node, a task and a runtime info: ~200
/// bytes and three objects a VM, a fifth of what the benchmark node kept per record), which every collection copied
/// along with the controller's own records; that was the stand-in's cost, not the controller's, and the answers made
/// per call die young.
/// </remarks>
public sealed class NoOpDriver(string name = "qemu", bool allRunning = false) : IHypervisorDriver
{
    private static readonly DriverAvailability Available = DriverAvailability.Ok("no-op benchmark driver");
    private static readonly Task<DriverAvailability> AvailableTask = Task.FromResult(Available);
    private static readonly DateTimeOffset Boot = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly HashSet<string> _running = new(StringComparer.Ordinal);

    public string Name { get; } = name;

    public bool AllRunning { get; } = allRunning;

    public DriverCapabilities Capabilities =>
        DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.Initrd | DriverCapabilities.BlockDevices;

    public int Started
    {
        get
        {
            lock (_running)
            {
                return _running.Count;
            }
        }
    }

    public Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default) => AvailableTask;

    public Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<VmRuntimeInfo>>([]);

    public Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        lock (_running)
        {
            if (AllRunning)
            {
                _running.Add(vm.Uid); // every VM is up: the first inspect counts it as started
            }
            else if (!_running.Contains(vm.Uid))
            {
                return Task.FromResult(VmRuntimeInfo.NotFound(vm.Uid));
            }
        }

        return Running(vm.Uid);
    }

    public Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        OnStart?.Invoke(vm);
        lock (_running)
        {
            _running.Add(vm.Uid);
        }

        return Running(vm.Uid);
    }

    /// <summary>Called as a start begins (the pipeline benchmark's "hypervisor launched" moment).</summary>
    public Action<MicroVm>? OnStart { get; set; }

    public Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default) => Task.CompletedTask;

    public Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default) => Task.CompletedTask;

    public Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default)
    {
        if (!AllRunning)
        {
            lock (_running)
            {
                _running.Remove(vm.Uid);
            }
        }

        return Task.CompletedTask;
    }

    public Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default) => StopAsync(vm, TimeSpan.Zero, cancellationToken);

    /// <summary>No guest, no console: the empty device, as in the runtime info it reports.</summary>
    public string ConsoleLogPath(MicroVm vm) => "/dev/null";

    private static Task<VmRuntimeInfo> Running(string uid) => Task.FromResult(new VmRuntimeInfo
    {
        Uid = uid,
        State = LiveState.Running,
        Pid = 1,
        ConsoleLogPath = "/dev/null",
        BootTime = Boot,
        Detail = "no-op",
    });
}

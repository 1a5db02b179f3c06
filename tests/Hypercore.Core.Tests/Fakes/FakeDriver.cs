using System.Collections.Concurrent;
using Hypercore.Drivers;
using Hypercore.MicroVms;

namespace Hypercore.Core.Tests.Fakes;

/// <summary>
/// A hand-written driver fake: keeps a live state per uid, records every call in order, and lets a test inject
/// failures, hangs and deaths.
/// </summary>
internal sealed class FakeDriver(string name = "fake", DriverCapabilities capabilities = FakeDriver.All) : IHypervisorDriver, ILiveStateChanges
{
    public const DriverCapabilities All = DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.Tap |
        DriverCapabilities.Initrd | DriverCapabilities.BlockDevices;

    private readonly ConcurrentDictionary<string, VmRuntimeInfo> _live = new();
    private readonly ConcurrentDictionary<string, int> _inFlight = new();
    private int _nextPid = 1000;

    public string Name { get; } = name;

    public DriverCapabilities Capabilities { get; } = capabilities;

    public ConcurrentQueue<string> Calls { get; } = new();

    public DriverAvailability Availability { get; set; } = DriverAvailability.Ok("fake ready");

    /// <summary>When set for a VM id, StartAsync throws it.</summary>
    public ConcurrentDictionary<string, Exception> StartFailures { get; } = new();

    /// <summary>When set for a VM id, StartAsync waits on it (simulating a slow or hung hypervisor).</summary>
    public ConcurrentDictionary<string, TaskCompletionSource> StartGates { get; } = new();

    /// <summary>Largest number of calls seen at once for one VM (must stay 1).</summary>
    public int MaxConcurrentPerVm { get; private set; }

    public Func<string, LiveState?>? InspectOverride { get; set; }

    /// <summary>When set for a VM id, InspectAsync waits on it (a hypervisor that stops answering, e.g. under SIGSTOP).</summary>
    public ConcurrentDictionary<string, TaskCompletionSource> InspectGates { get; } = new();

    /// <summary>When set, ListAsync waits on it (a driver that hangs while listing at start).</summary>
    public TaskCompletionSource? ListGate { get; set; }

    /// <summary>Completes when ListAsync is first called (the caller's timeout for it is running by then).</summary>
    public Task ListCalled => _listCalled.Task;

    private readonly TaskCompletionSource _listCalled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Largest number of StartAsync calls in flight at once, across all VMs.</summary>
    public int MaxConcurrentStarts => Volatile.Read(ref _maxStarts);

    private int _starts;
    private int _maxStarts;

    public int CallCount(string op) => Calls.Count(c => c.StartsWith(op + ":", StringComparison.Ordinal));

    public void SetLive(string uid, LiveState state, ExitKind exit = ExitKind.None, int? pid = null) =>
        _live[uid] = new VmRuntimeInfo { Uid = uid, State = state, Exit = exit, Pid = pid ?? Interlocked.Increment(ref _nextPid) };

    public VmRuntimeInfo? Live(string uid) => _live.GetValueOrDefault(uid);

    public event Action<string>? LiveStateChanged;

    /// <summary>What a driver does when it sees a hypervisor end (issue 15: pidfd exit watch).</summary>
    public void RaiseLiveStateChanged(string uid) => LiveStateChanged?.Invoke(uid);

    public bool HasLiveStateSubscribers => LiveStateChanged is not null;

    public Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default) => Task.FromResult(Availability);

    public async Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        _listCalled.TrySetResult();
        if (ListGate is { } gate)
        {
            await gate.Task.WaitAsync(cancellationToken);
        }

        return _live.Values.Where(v => v.State is LiveState.Running or LiveState.Paused).ToList();
    }

    public async Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        using var _ = Enter(vm, "inspect");
        await Task.Yield();
        if (InspectGates.TryGetValue(vm.Spec.Id, out var gate))
        {
            await gate.Task.WaitAsync(cancellationToken);
        }

        if (InspectOverride?.Invoke(vm.Spec.Id) is { } forced)
        {
            return new VmRuntimeInfo { Uid = vm.Uid, State = forced };
        }

        return _live.GetValueOrDefault(vm.Uid) ?? VmRuntimeInfo.NotFound(vm.Uid);
    }

    /// <summary>The VM as last given to StartAsync (a start step may have replaced the stored view).</summary>
    public MicroVm? LastStarted { get; private set; }

    public async Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        using var _ = Enter(vm, "start");
        LastStarted = vm;
        var starts = Interlocked.Increment(ref _starts);
        lock (_inFlight)
        {
            _maxStarts = Math.Max(_maxStarts, starts);
        }

        try
        {
            if (StartGates.TryGetValue(vm.Spec.Id, out var gate))
            {
                await gate.Task.WaitAsync(cancellationToken);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _starts);
        }

        if (StartFailures.TryGetValue(vm.Spec.Id, out var ex))
        {
            throw ex;
        }

        var info = new VmRuntimeInfo
        {
            Uid = vm.Uid, State = LiveState.Running, Pid = Interlocked.Increment(ref _nextPid),
            ConsoleLogPath = $"/fake/{vm.Uid}/console.log", BootTime = DateTimeOffset.UnixEpoch, Detail = "fake",
        };
        _live[vm.Uid] = info;
        return info;
    }

    public Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default) => Change(vm, "pause", LiveState.Paused);

    public Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default) => Change(vm, "resume", LiveState.Running);

    public Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default)
    {
        using var _ = Enter(vm, $"stop({gracePeriod.TotalSeconds:0})");
        _live.TryRemove(vm.Uid, out var _1);
        return Task.CompletedTask;
    }

    public string ConsoleLogPath(MicroVm vm) => $"/fake/{vm.Uid}/console.log";

    public Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        using var _ = Enter(vm, "cleanup");
        _live.TryRemove(vm.Uid, out var _1);
        return Task.CompletedTask;
    }

    private Task Change(MicroVm vm, string op, LiveState to)
    {
        using var _ = Enter(vm, op);
        _live.AddOrUpdate(vm.Uid, _ => throw new InvalidOperationException($"{op} of a VM that is not running"), (_, v) => v with { State = to });
        return Task.CompletedTask;
    }

    private Releaser Enter(MicroVm vm, string op)
    {
        Calls.Enqueue($"{op}:{vm.Spec.Id}");
        var now = _inFlight.AddOrUpdate(vm.Uid, 1, (_, n) => n + 1);
        lock (_inFlight)
        {
            MaxConcurrentPerVm = Math.Max(MaxConcurrentPerVm, now);
        }

        return new Releaser(() => _inFlight.AddOrUpdate(vm.Uid, 0, (_, n) => n - 1));
    }

    private readonly struct Releaser(Action release) : IDisposable
    {
        public void Dispose() => release();
    }
}

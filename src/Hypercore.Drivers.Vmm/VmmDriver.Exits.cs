namespace Hypercore.Drivers.Vmm;

/// <summary>
/// Issue 15: every hypervisor process this driver starts or finds running is watched by pidfd
/// (<see cref="ProcessExitWatch"/>), and its end is reported at once (<see cref="ILiveStateChanges"/>): the reconciler
/// then inspects the VM, finds the process gone and reports the crash without waiting for the next status poll.
/// A process is no longer watched once the driver stops or clears it on purpose.
/// </summary>
public abstract partial class VmmDriver : ILiveStateChanges, IDisposable
{
    private readonly ProcessExitWatch _exits = new();

    public event Action<string>? LiveStateChanged
    {
        add => _exits.Exited += value;
        remove => _exits.Exited -= value;
    }

    /// <summary>Processes whose exit is watched now (tests, metrics).</summary>
    public int WatchedProcesses => _exits.Count;

    /// <summary>Whether the end of <paramref name="pid"/> is watched for the VM <paramref name="uid"/>.</summary>
    public bool IsWatchingExit(string uid, int pid) => _exits.IsWatching(uid, pid);

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Closes the exit watch (its pidfds and thread); the hypervisors themselves are left running.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            _exits.Dispose();
        }
    }

    /// <summary>After the VM's process was stopped or cleared on purpose: drop what the driver keeps per running VM.</summary>
    protected virtual void AfterClear(VmDirectory dir, string uid)
    {
    }

    /// <summary>
    /// Whether the recorded process still runs: asked of its pidfd when it is watched (one syscall, where the /proc
    /// reading takes its stat and its whole command line on every status poll), else read from /proc as before.
    /// </summary>
    private bool IsAlive(VmRecord record) => _exits.IsRunning(record.Uid, record.Pid) ?? VmDirectory.IsRecordedProcessAlive(record);

    private void WatchExit(VmRecord record) => _exits.Watch(record.Uid, record.Pid, record.PidStartTicks);
}

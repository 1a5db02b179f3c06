namespace Hypercore.Drivers.Vmm;

/// <summary>
/// Issue 15: every hypervisor process this driver starts or finds running is watched by pidfd
/// (<see cref="ProcessExitWatch"/>), and its end is reported at once (<see cref="ILiveStateChanges"/>): the reconciler
/// then inspects the VM, finds the process gone and reports the crash without waiting for the next status poll.
/// A process is no longer watched once the driver stops or clears it on purpose.
/// </summary>
public abstract partial class VmmDriver : ILiveStateChanges, IDisposable
{
    private ProcessExitWatch _exits = new();

    /// <summary>
    /// The exit watch. A test sets one without pidfds (<c>new ProcessExitWatch(pidfd: false)</c>) before it subscribes
    /// or starts anything, to run the path of a host without pidfd_open.
    /// </summary>
    internal ProcessExitWatch ExitWatch
    {
        get => _exits;
        init
        {
            _exits.Exited -= ProcessEnded;
            _exits.Dispose();
            _exits = value;
            _exits.Exited += ProcessEnded;
        }
    }

    private Action<string>? _reported;

    public event Action<string>? LiveStateChanged
    {
        add
        {
            _exits.Exited += value;
            _reported += value;
        }

        remove
        {
            _exits.Exited -= value;
            _reported -= value;
        }
    }

    /// <summary>
    /// Issue 15 (idle4): tells the subscribers of <see cref="LiveStateChanged"/> that the VM <paramref name="uid"/>'s live
    /// state changed without its process ending (e.g. QEMU reported a pause or a guest power-off).
    /// </summary>
    protected void ReportLiveStateChange(string uid) => _reported?.Invoke(uid);

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

    /// <summary>
    /// The VM's hypervisor process ended: drop what the driver keeps per running process (QEMU: its kept status
    /// session). Called by the exit watch when a watched process ends (before the <see cref="LiveStateChanged"/>
    /// subscribers hear of it) and by an inspection that finds the recorded process gone, which without pidfds
    /// (Linux before 5.3) is the only moment the driver learns it; so it is called more than once: it must be
    /// idempotent. Runs on the watch thread or an inspecting thread: it must not block.
    /// </summary>
    protected virtual void ProcessEnded(string uid)
    {
    }

    /// <summary>After the VM's process was stopped or cleared on purpose: drop what the driver keeps per running VM.</summary>
    protected virtual void AfterClear(VmDirectory dir, string uid)
    {
    }

    /// <summary>
    /// Whether the recorded process still runs. A watched one is asked of its pidfd first; while the pidfd says it runs,
    /// only its /proc stat is read (a leader already a zombie while its other threads still exit is dead, as before),
    /// not its whole command line: the pidfd has held that very process since its start time was checked. An
    /// unwatched process is read from /proc as before.
    /// </summary>
    private bool IsAlive(VmRecord record) => _exits.IsRunning(record.Uid, record.Pid) switch
    {
        null => VmDirectory.IsRecordedProcessAlive(record),
        false => false,
        true => HostProcess.IsSameProcess(record.Pid, record.PidStartTicks),
    };

    private void WatchExit(VmRecord record) => _exits.Watch(record.Uid, record.Pid, record.PidStartTicks);
}

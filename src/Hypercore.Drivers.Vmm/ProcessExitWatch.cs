using System.Runtime.InteropServices;

namespace Hypercore.Drivers.Vmm;

/// <summary>
/// Issue 15 (idle cost of running VMs): tells at once when a hypervisor process ends, instead of the next status poll
/// finding it gone. One pidfd per watched process (pidfd_open works for any process, so also for one adopted after a
/// daemon restart, which is not this daemon's child) and one thread blocked in poll(2) on all of them plus an eventfd
/// that wakes it when the set changes. A process is watched under the VM's uid; its end raises <see cref="Exited"/>
/// with that uid once. Where pidfd_open is missing (Linux before 5.3, glibc before 2.36) nothing is watched and the
/// poll remains the way a dead hypervisor is found.
/// </summary>
public sealed partial class ProcessExitWatch : IDisposable
{
    private const short PollIn = 0x001;
    private const int EfdCloexec = 0x80000;
    private const int EfdNonblock = 0x800;

    private readonly Lock _gate = new();
    private readonly Dictionary<string, Watched> _byUid = new(StringComparer.Ordinal);

    // Closed by the watch thread between two poll(2) calls, never while poll may still hold the number: a number
    // closed under a running poll could be reused by another file before poll looks at it again.
    private readonly List<int> _toClose = [];
    private readonly bool _pidfd;
    private int _wake = -1;
    private Thread? _thread;
    private bool _disposed;

    /// <summary>Watches by pidfd where this host has it (<see cref="Supported"/>).</summary>
    public ProcessExitWatch()
        : this(Supported)
    {
    }

    /// <param name="pidfd">
    /// Whether to use pidfds at all; false runs the path of a host without pidfd_open (nothing is watched, the poll
    /// finds every exit), so a test can check that path on a kernel that has it.
    /// </param>
    internal ProcessExitWatch(bool pidfd) => _pidfd = pidfd && Supported;

    /// <summary>Raised on the watch thread with the uid of a watched process that ended. Handlers must not block.</summary>
    public event Action<string>? Exited;

    /// <summary>Whether this host can watch processes by pidfd.</summary>
    public static bool Supported { get; } = Probe();

    /// <summary>Processes watched now (for tests and metrics).</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _byUid.Count;
            }
        }
    }

    /// <summary>Whether <paramref name="uid"/> is watched with exactly this pid.</summary>
    public bool IsWatching(string uid, int pid)
    {
        lock (_gate)
        {
            return _byUid.TryGetValue(uid, out var w) && w.Pid == pid;
        }
    }

    /// <summary>
    /// Whether the process watched for <paramref name="uid"/> as <paramref name="pid"/> still runs, asked of its pidfd
    /// (one poll(2) with no wait; exact even once the number is reused), or null when it is not watched.
    /// </summary>
    public unsafe bool? IsRunning(string uid, int pid)
    {
        lock (_gate) // pidfds are closed under the lock only, so this one stays open while asked
        {
            if (!_byUid.TryGetValue(uid, out var w) || w.Pid != pid)
            {
                return null;
            }

            var probe = new PollFd { Fd = w.Fd, Events = PollIn };
            return Poll(&probe, 1, 0) switch
            {
                < 0 => null,
                0 => true,
                _ => (probe.Revents & PollIn) == 0,
            };
        }
    }

    /// <summary>
    /// Watches <paramref name="pid"/> under <paramref name="uid"/> (replacing another pid watched for it). The process
    /// must still be the one started at <paramref name="startTicks"/> once its pidfd is open, so a pid reused by an
    /// unrelated process is never watched. False when it cannot be watched (gone, reused, or no pidfd here).
    /// </summary>
    public bool Watch(string uid, int pid, long startTicks)
    {
        if (!_pidfd || pid <= 1)
        {
            return false;
        }

        lock (_gate)
        {
            if (_disposed)
            {
                return false;
            }

            if (_byUid.TryGetValue(uid, out var existing) && existing.Pid == pid)
            {
                return true;
            }
        }

        var fd = PidfdOpen(pid, 0);
        if (fd < 0)
        {
            return false;
        }

        // Checked after the pidfd is open: from here on the pid cannot name another process while the fd is held.
        if (!HostProcess.IsSameProcess(pid, startTicks))
        {
            Close(fd);
            return false;
        }

        lock (_gate)
        {
            if (_disposed)
            {
                Close(fd);
                return false;
            }

            if (_byUid.Remove(uid, out var replaced))
            {
                _toClose.Add(replaced.Fd);
            }

            if (_thread is null)
            {
                // The eventfd and the thread come with the first process watched: a driver that never starts or
                // adopts a VM (tests, a provider unused on this node) holds neither.
                _wake = EventFd(0, EfdCloexec | EfdNonblock);
                if (_wake < 0)
                {
                    Close(fd);
                    return false;
                }

                _thread = StartThread();
            }

            _byUid[uid] = new Watched(uid, pid, fd);
        }

        Wake();
        return true;
    }

    /// <summary>Stops watching <paramref name="uid"/> (a stop on purpose is no crash to report).</summary>
    public void Unwatch(string uid)
    {
        lock (_gate)
        {
            if (!_byUid.Remove(uid, out var w))
            {
                return;
            }

            _toClose.Add(w.Fd);
        }

        Wake();
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
        }

        Wake();
        _thread?.Join(TimeSpan.FromSeconds(5));
        lock (_gate)
        {
            foreach (var w in _byUid.Values)
            {
                _toClose.Add(w.Fd);
            }

            _byUid.Clear();
            CloseDeferred();
            if (_wake >= 0)
            {
                Close(_wake);
                _wake = -1;
            }
        }
    }

    private Thread StartThread()
    {
        var thread = new Thread(Run) { IsBackground = true, Name = "hypervisor exits" };
        thread.Start();
        return thread;
    }

    private void Wake()
    {
        // Under the lock, so it never writes to a number Dispose has closed (and something else may have reopened).
        lock (_gate)
        {
            if (_wake >= 0)
            {
                long one = 1;
                _ = Write(_wake, ref one, sizeof(long));
            }
        }
    }

    private unsafe void Run()
    {
        var fds = new PollFd[1];
        var uids = new string[1];
        while (true)
        {
            var n = 1;
            lock (_gate)
            {
                CloseDeferred();
                if (_disposed)
                {
                    return;
                }

                if (fds.Length < _byUid.Count + 1)
                {
                    fds = new PollFd[_byUid.Count * 2 + 1];
                    uids = new string[fds.Length];
                }

                fds[0] = new PollFd { Fd = _wake, Events = PollIn };
                foreach (var w in _byUid.Values)
                {
                    fds[n] = new PollFd { Fd = w.Fd, Events = PollIn };
                    uids[n] = w.Uid;
                    n++;
                }
            }

            int ready;
            fixed (PollFd* p = fds)
            {
                ready = Poll(p, (nuint)n, -1);
            }

            if (ready < 0)
            {
                continue; // EINTR; a closed fd shows as POLLNVAL, not as an error
            }

            if (fds[0].Revents != 0)
            {
                long drained = 0;
                _ = Read(_wake, ref drained, sizeof(long));
            }

            List<string>? ended = null;
            lock (_gate)
            {
                for (var i = 1; i < n; i++)
                {
                    if ((fds[i].Revents & PollIn) != 0 && _byUid.TryGetValue(uids[i], out var w) && w.Fd == fds[i].Fd)
                    {
                        _byUid.Remove(uids[i]);
                        Close(w.Fd);
                        (ended ??= []).Add(w.Uid);
                    }
                }
            }

            foreach (var uid in ended ?? [])
            {
                try
                {
                    Exited?.Invoke(uid);
                }
                catch (Exception)
                {
                    // a handler's failure must not end the watch for every other VM
                }
            }
        }
    }

    private void CloseDeferred()
    {
        foreach (var fd in _toClose)
        {
            Close(fd);
        }

        _toClose.Clear();
    }

    private static bool Probe()
    {
        try
        {
            var fd = PidfdOpen(Environment.ProcessId, 0);
            if (fd < 0)
            {
                return false;
            }

            Close(fd);
            return true;
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }
    }

    private sealed record Watched(string Uid, int Pid, int Fd);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "pidfd_open", SetLastError = true)]
    private static partial int PidfdOpen(int pid, uint flags);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFd(uint initval, int flags);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Poll(PollFd* fds, nuint nfds, int timeout);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint Read(int fd, ref long value, nint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static partial nint Write(int fd, ref long value, nint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}

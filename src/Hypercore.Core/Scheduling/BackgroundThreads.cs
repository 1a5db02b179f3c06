namespace Hypercore.Scheduling;

/// <summary>
/// Issue 15, tenth pass: a few dedicated threads for background work (the reconciler's passes), so that it does not
/// share the thread pool's queues with the answering of API calls. Work started with <see cref="Run"/> runs here, and
/// so does every continuation of its awaits (this is the <see cref="SynchronizationContext"/> they capture). On the
/// thread pool, a Create's answer (queued to the pool's global queue by the store writer's thread) waited behind the
/// reconciler's passes, which each pool thread takes first from its own local queue.
/// <para>
/// The threads may also run at a lower OS priority (a higher nice value): when every core is busy the kernel then runs
/// the API first, and background work still gets its weighted share (nice 5: about a third of one thread at 0), so it
/// is deferred, never stopped. Only where the priority can be put back (root or CAP_SYS_NICE): a thread or process
/// started from a lowered thread inherits its value, so pool threads it happened to create are put back after its work
/// (<see cref="ThreadNice.RestoreOthers"/>, at most every <see cref="RestoreEvery"/>), and a hypervisor launch puts its
/// own thread back first (<see cref="ThreadNice.RestoreInherited"/>). Elsewhere the threads stay at the process's
/// priority (still apart from the pool).
/// </para>
/// </summary>
public sealed class BackgroundThreads : SynchronizationContext, IDisposable
{
    /// <summary>Longest a thread-pool thread that inherited the lower priority keeps it.</summary>
    public static readonly TimeSpan RestoreEvery = TimeSpan.FromSeconds(1);

    private readonly object _gate = new();
    private readonly Queue<(SendOrPostCallback Callback, object? State)> _items = new();
    private readonly int[] _threadIds;
    private readonly int _nice;
    private readonly bool _canRestore;
    private int _idle;
    private bool _stopping;
    private int _lowered;
    private long _nextRestore;
    private int _restoreOwed;
    private long _restored;

    /// <param name="threads">How many threads (at least 1).</param>
    /// <param name="nice">The nice value the threads run at (0: the process's own).</param>
    /// <param name="name">The threads' name (top -H, traces).</param>
    public BackgroundThreads(int threads, int nice, string name)
        : this(threads, nice, name, Environment.IsPrivilegedProcess)
    {
    }

    /// <param name="canRestore">Whether a lowered priority can be put back (root): only then are the threads lowered.</param>
    internal BackgroundThreads(int threads, int nice, string name, bool canRestore)
    {
        _nice = nice;
        _canRestore = canRestore;
        var count = Math.Max(1, threads);
        _threadIds = new int[count];
        using var started = new CountdownEvent(count);
        for (var i = 0; i < count; i++)
        {
            var index = i;
            new Thread(() => Loop(index, started), maxStackSize: 256 * 1024) { IsBackground = true, Name = name }.Start();
        }

        started.Wait(); // every thread has its priority: Lowered is final
    }

    /// <summary>How many of the threads run at the lower priority asked for (0: none was asked for, or not allowed).</summary>
    public int Lowered => Volatile.Read(ref _lowered);

    /// <summary>Threads of the process put back at the normal priority after inheriting the lower one (tests, metrics).</summary>
    public long Restored => Interlocked.Read(ref _restored);

    /// <summary>Starts <paramref name="work"/> on these threads; its awaits continue here too.</summary>
    public Task Run(Func<Task> work)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(static state =>
        {
            var (work, done) = ((Func<Task>, TaskCompletionSource))state!;
            Task task;
            try
            {
                task = work();
            }
            catch (Exception ex)
            {
                done.TrySetException(ex);
                return;
            }

            task.ContinueWith(static (t, d) => ((TaskCompletionSource)d!).TrySetFromTask(t), done, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }, (work, done));
        return done.Task;
    }

    public override void Post(SendOrPostCallback d, object? state)
    {
        lock (_gate)
        {
            _items.Enqueue((d, state));
            if (_idle > 0)
            {
                Monitor.Pulse(_gate);
            }
        }
    }

    public override void Send(SendOrPostCallback d, object? state) => throw new NotSupportedException("background threads take work by Post only");

    public override SynchronizationContext CreateCopy() => this;

    private void Loop(int index, CountdownEvent started)
    {
        _threadIds[index] = ThreadNice.CurrentThreadId();
        if (_nice > 0 && ThreadNice.TryLowerCurrentThread(_nice, _canRestore))
        {
            Interlocked.Increment(ref _lowered);
        }

        started.Signal();
        SetSynchronizationContext(this);
        var lowered = _nice > 0 && _canRestore;
        while (true)
        {
            (SendOrPostCallback Callback, object? State) item;
            lock (_gate)
            {
                while (_items.Count == 0)
                {
                    if (_stopping)
                    {
                        return;
                    }

                    _idle++;
                    if (Volatile.Read(ref _restoreOwed) != 0)
                    {
                        Monitor.Wait(_gate, RestoreEvery); // then put back what the last work may have started
                    }
                    else
                    {
                        Monitor.Wait(_gate);
                    }

                    _idle--;
                    if (_items.Count == 0 && Volatile.Read(ref _restoreOwed) != 0)
                    {
                        break;
                    }
                }

                item = _items.Count > 0 ? _items.Dequeue() : default;
            }

            if (item.Callback is not null)
            {
                item.Callback(item.State);
                if (lowered)
                {
                    Volatile.Write(ref _restoreOwed, 1);
                }
            }

            if (lowered && Volatile.Read(ref _restoreOwed) != 0 && Environment.TickCount64 >= Volatile.Read(ref _nextRestore) &&
                Interlocked.Exchange(ref _restoreOwed, 0) != 0)
            {
                Volatile.Write(ref _nextRestore, Environment.TickCount64 + (long)RestoreEvery.TotalMilliseconds);
                Interlocked.Add(ref _restored, ThreadNice.RestoreOthers(_threadIds));
            }
        }
    }

    /// <summary>Lets the threads finish what is queued, then end.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
    }
}

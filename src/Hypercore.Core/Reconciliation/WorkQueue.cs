using System.Threading.Tasks.Sources;

namespace Hypercore.Reconciliation;

/// <summary>
/// A key-only work queue with the client-go semantics the reconciler needs: a key queued twice is worked once;
/// a key being worked is never handed to a second worker; a key added while it is worked is queued again when
/// the worker is done. Delays and per-key exponential backoff run on an injected <see cref="TimeProvider"/>.
/// </summary>
public sealed class WorkQueue<TKey> : IDisposable
    where TKey : notnull
{
    private readonly object _gate = new();
    private readonly Queue<TKey> _queue = new();
    private readonly HashSet<TKey> _dirty = [];
    private readonly HashSet<TKey> _processing = [];
    private readonly Dictionary<TKey, int> _failures = [];
    // Issue 15: one timer for all delayed keys (a min-heap of due times) instead of one timer per key: every
    // Running VM waits here for its next poll, and 100,000 timers cost tens of MB and a busy timer queue.
    private readonly Dictionary<TKey, DateTimeOffset> _delayed = [];
    private readonly PriorityQueue<TKey, DateTimeOffset> _dueOrder = new();
    private ITimer? _timer;
    private DateTimeOffset _armedFor = DateTimeOffset.MaxValue;
    // Workers waiting for a key (issue 15, alloc7: instead of a SemaphoreSlim, whose WaitAsync made a task, a node and
    // two state machines every time a worker waited: ~0.5 KB per Create). A key added while one waits is handed to it
    // directly; the waiters are pooled, so a wait allocates nothing.
    private readonly List<Waiter> _waiters = [];
    private readonly Stack<Waiter> _idleWaiters = new();
    private readonly TimeProvider _time;
    private readonly TimeSpan _baseDelay;
    private readonly TimeSpan _maxDelay;
    private bool _shutdown;

    public WorkQueue(TimeProvider time, TimeSpan baseDelay, TimeSpan maxDelay)
    {
        _time = time;
        _baseDelay = baseDelay;
        _maxDelay = maxDelay;
    }

    /// <summary>Keys waiting to be worked (not counting delayed or in-flight ones).</summary>
    public int Depth
    {
        get
        {
            lock (_gate)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Queues a key now. Duplicates collapse.</summary>
    public void Add(TKey key)
    {
        Waiter? waiter;
        lock (_gate)
        {
            if (_shutdown || !_dirty.Add(key))
            {
                return;
            }

            if (_processing.Contains(key))
            {
                return; // queued again by Done
            }

            _queue.Enqueue(key);
            waiter = HandOutLocked(out key);
        }

        waiter?.Complete(true, key);
    }

    /// <summary>
    /// Queues a key now, as <see cref="Add"/> does, but wakes no waiting worker: the caller hands the queue out with
    /// <see cref="HandOutHere"/> once it can (issue 15, thirteenth pass: the informer queues keys under its lock and
    /// hands them out after it, see <see cref="HandOutHere"/>). Until then the key is in the queue like any other: a
    /// worker that asks for a key, or any <see cref="Add"/> or <see cref="Done"/> that hands one out, takes it.
    /// </summary>
    public void AddHeld(TKey key)
    {
        lock (_gate)
        {
            if (_shutdown || !_dirty.Add(key) || _processing.Contains(key))
            {
                return;
            }

            _queue.Enqueue(key);
        }
    }

    /// <summary>
    /// Hands queued keys to waiting workers: the first <paramref name="here"/> of them with the worker's continuation
    /// run on the calling thread until it first waits (a reconcile pass: until its first store write), the rest as
    /// <see cref="Add"/> hands them out, through the thread pool.
    /// </summary>
    /// <remarks>
    /// Issue 15, thirteenth pass: a key the informer queued reached its worker through a thread-pool work item (and
    /// usually the wake-up of a parked pool thread) for each new VM, only for that thread to run the pass up to its
    /// claim and wait for the store. The informer's thread now runs that part itself, after its lock is released; the
    /// poll timer's callback does the same with the keys that came due. A worker run here takes no key from the queue
    /// without waiting: when its pass ends without waiting, it waits for its next key like any worker, and what is
    /// still queued is handed out through the pool once <paramref name="here"/> is used up. So the caller runs at most
    /// <paramref name="here"/> passes, up to their first wait. Must not be called under a lock the workers take.
    /// </remarks>
    public void HandOutHere(int here)
    {
        while (true)
        {
            Waiter? waiter;
            TKey key;
            lock (_gate)
            {
                if (_shutdown || _queue.Count == 0)
                {
                    return;
                }

                waiter = HandOutLocked(out key);
            }

            if (waiter is null)
            {
                return;
            }

            if (here-- <= 0)
            {
                waiter.Complete(true, key);
                continue;
            }

            var outer = t_handingOut;
            t_handingOut = this;
            try
            {
                waiter.Complete(true, key, here: true);
            }
            finally
            {
                t_handingOut = outer;
            }
        }
    }

    // The queue whose worker this thread runs in HandOutHere, if any.
    [ThreadStatic]
    private static WorkQueue<TKey>? t_handingOut;

    /// <summary>
    /// Under the lock, with a key just queued: if a worker is waiting, the queue's first key is its (taken as
    /// <see cref="TakeAsync"/> takes it); the caller completes the waiter after leaving the lock.
    /// </summary>
    private Waiter? HandOutLocked(out TKey key)
    {
        if (_waiters.Count == 0)
        {
            key = default!;
            return null;
        }

        var waiter = _waiters[0];
        _waiters.RemoveAt(0); // first come, first served, as the semaphore was
        key = TakeLocked();
        return waiter;
    }

    private TKey TakeLocked()
    {
        var key = _queue.Dequeue();
        _processing.Add(key);
        _dirty.Remove(key);
        return key;
    }

    /// <summary>Queues a key after a delay. An earlier pending delay for the same key wins.</summary>
    public void AddAfter(TKey key, TimeSpan delay) => AddAfter(key, delay, TimeSpan.Zero);

    /// <summary>
    /// Queues a key after about <paramref name="delay"/>: with a positive <paramref name="step"/> its due time is rounded
    /// down to a multiple of it on the queue's clock, so keys that fall due within one such step are handed out by one
    /// timer callback instead of one each (issue 15, eighteenth pass: the polls of a node's live VMs, up to
    /// <see cref="ReconcilerOptions.MaxPollsPerSecond"/> a second with random delays, woke the timer thread and a pool
    /// thread once per poll). Never later than <paramref name="delay"/>, and at most one step earlier; a delay shorter than
    /// two steps is kept exact (it would otherwise come due at once). An earlier pending delay for the same key wins.
    /// </summary>
    public void AddAfter(TKey key, TimeSpan delay, TimeSpan step)
    {
        if (delay <= TimeSpan.Zero)
        {
            Add(key);
            return;
        }

        lock (_gate)
        {
            if (_shutdown)
            {
                return;
            }

            var due = _time.GetUtcNow() + delay;
            if (step > TimeSpan.Zero && delay >= step * 2)
            {
                due = new DateTimeOffset(due.UtcTicks - due.UtcTicks % step.Ticks, TimeSpan.Zero);
            }

            if (_delayed.TryGetValue(key, out var existing) && existing <= due)
            {
                return;
            }

            _delayed[key] = due; // a later entry for the key left in the heap is skipped when it comes up
            _dueOrder.Enqueue(key, due);
            if (due < _armedFor)
            {
                Arm(due);
            }
        }
    }

    /// <summary>Keys waiting for a delay or a backoff to pass.</summary>
    public int DelayedCount
    {
        get
        {
            lock (_gate)
            {
                return _delayed.Count;
            }
        }
    }

    /// <summary>Points the one timer at <paramref name="due"/>. Called under the lock.</summary>
    private void Arm(DateTimeOffset due)
    {
        _armedFor = due;
        var wait = due - _time.GetUtcNow();
        if (wait < TimeSpan.FromMilliseconds(1))
        {
            wait = TimeSpan.FromMilliseconds(1); // a timer that fires a little early re-arms for the rest
        }

        if (_timer is null)
        {
            _timer = _time.CreateTimer(static state => ((WorkQueue<TKey>)state!).FireDue(), this, wait, Timeout.InfiniteTimeSpan);
        }
        else
        {
            _timer.Change(wait, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Moves every key whose time has come to the queue, then re-arms the timer for the next one.</summary>
    private void FireDue()
    {
        List<TKey>? ready = null;
        lock (_gate)
        {
            if (_shutdown)
            {
                return;
            }

            var now = _time.GetUtcNow();
            _armedFor = DateTimeOffset.MaxValue;
            while (_dueOrder.TryPeek(out var key, out var due) && due <= now)
            {
                _dueOrder.Dequeue();
                if (_delayed.TryGetValue(key, out var current) && current == due)
                {
                    _delayed.Remove(key);
                    (ready ??= []).Add(key);
                }
            }

            if (_dueOrder.TryPeek(out _, out var next))
            {
                Arm(next);
            }
        }

        // The timer's callback runs on a thread-pool thread: it hands the keys out itself (issue 15, thirteenth pass:
        // a poll of a live VM was the timer's work item, then one more to reach its worker; HandOutHere).
        foreach (var key in ready ?? [])
        {
            AddHeld(key);
        }

        if (ready is not null)
        {
            HandOutHere(ready.Count);
        }
    }

    /// <summary>Queues a key after its exponential backoff (base × 2^failures, capped) and counts a failure.</summary>
    public TimeSpan AddRateLimited(TKey key)
    {
        TimeSpan delay;
        lock (_gate)
        {
            _failures.TryGetValue(key, out var failures);
            _failures[key] = failures + 1;
            delay = Backoff(failures);
        }

        AddAfter(key, delay);
        return delay;
    }

    /// <summary>How many failures the key has had since the last <see cref="Forget"/>.</summary>
    public int Failures(TKey key)
    {
        lock (_gate)
        {
            return _failures.GetValueOrDefault(key);
        }
    }

    /// <summary>Clears the key's backoff after a success.</summary>
    public void Forget(TKey key)
    {
        lock (_gate)
        {
            _failures.Remove(key);
        }
    }

    /// <summary>Waits for the next key. Returns false when the queue is shut down.</summary>
    /// <remarks>The result is awaited once, like any <see cref="ValueTask{TResult}"/>.</remarks>
    public ValueTask<(bool Ok, TKey Key)> TakeAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<(bool, TKey)>(cancellationToken);
        }

        Waiter waiter;
        lock (_gate)
        {
            if (_shutdown)
            {
                return new ValueTask<(bool, TKey)>((false, default!));
            }

            // A worker run by HandOutHere waits even for a key already queued: HandOutHere hands it out (its caller runs
            // no more passes than it asked for).
            if (_queue.Count > 0 && t_handingOut != this)
            {
                return new ValueTask<(bool, TKey)>((true, TakeLocked()));
            }

            waiter = _idleWaiters.Count > 0 ? _idleWaiters.Pop() : new Waiter(this);
            _waiters.Add(waiter);
        }

        // Outside the lock: a token cancelled meanwhile runs the callback here, and it takes the lock itself. The waiter
        // cannot be reused before this returns: only the caller's await of the result gives it back.
        return waiter.Wait(cancellationToken);
    }

    /// <summary>Marks a key as worked; if it was added meanwhile it goes back in the queue.</summary>
    public void Done(TKey key)
    {
        Waiter? waiter = null;
        var next = default(TKey)!;
        lock (_gate)
        {
            _processing.Remove(key);
            if (_dirty.Contains(key) && !_shutdown)
            {
                _queue.Enqueue(key);
                waiter = HandOutLocked(out next);
            }
        }

        waiter?.Complete(true, next);
    }

    public void ShutDown()
    {
        Waiter[] waiting;
        lock (_gate)
        {
            _shutdown = true;
            _timer?.Dispose();
            _timer = null;
            _delayed.Clear();
            _dueOrder.Clear();
            waiting = [.. _waiters];
            _waiters.Clear();
        }

        foreach (var waiter in waiting)
        {
            waiter.Complete(false, default!); // every waiting worker is told, as later takers are
        }
    }

    public void Dispose() => ShutDown();

    private TimeSpan Backoff(int failures)
    {
        var exp = Math.Min(failures, 30);
        var ticks = _baseDelay.Ticks * Math.Pow(2, exp);
        return ticks >= _maxDelay.Ticks ? _maxDelay : TimeSpan.FromTicks((long)ticks);
    }
    /// <summary>
    /// One worker's wait: completed with a key, with "shut down", or cancelled by the worker's token. Reused once its
    /// result has been read.
    /// </summary>
    private sealed class Waiter(WorkQueue<TKey> queue) : IValueTaskSource<(bool Ok, TKey Key)>
    {
        private ManualResetValueTaskSourceCore<(bool, TKey)> _core = new() { RunContinuationsAsynchronously = true };
        private CancellationTokenRegistration _registration;

        public ValueTask<(bool Ok, TKey Key)> Wait(CancellationToken ct)
        {
            var version = _core.Version;
            if (ct.CanBeCanceled)
            {
                _registration = ct.UnsafeRegister(static (state, token) => ((Waiter)state!).Cancel(token), this);
            }

            return new ValueTask<(bool, TKey)>(this, version);
        }

        /// <summary>
        /// Called once the waiter has left the queue's list, outside the lock. <paramref name="here"/>: the worker's
        /// continuation runs on this thread (<see cref="HandOutHere"/>) rather than through the thread pool.
        /// </summary>
        public void Complete(bool ok, TKey key, bool here = false)
        {
            if (here)
            {
                _core.RunContinuationsAsynchronously = false; // back to true when the result is read
            }

            _core.SetResult((ok, key));
        }

        private void Cancel(CancellationToken token)
        {
            lock (queue._gate)
            {
                if (!queue._waiters.Remove(this))
                {
                    return; // already handed a key, or told of the shutdown: that result stands
                }
            }

            _core.SetException(new OperationCanceledException(token));
        }

        public (bool Ok, TKey Key) GetResult(short token)
        {
            try
            {
                return _core.GetResult(token);
            }
            finally
            {
                _registration.Dispose(); // waits for a cancellation callback that is still running
                _registration = default;
                _core.Reset();
                _core.RunContinuationsAsynchronously = true;
                lock (queue._gate)
                {
                    queue._idleWaiters.Push(this);
                }
            }
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}

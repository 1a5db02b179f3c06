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
    private readonly SemaphoreSlim _signal = new(0);
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
        }

        _signal.Release();
    }

    /// <summary>Queues a key after a delay. An earlier pending delay for the same key wins.</summary>
    public void AddAfter(TKey key, TimeSpan delay)
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

        foreach (var key in ready ?? [])
        {
            Add(key);
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
    public async Task<(bool Ok, TKey Key)> TakeAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            await _signal.WaitAsync(cancellationToken).ConfigureAwait(false);
            lock (_gate)
            {
                if (_shutdown)
                {
                    _signal.Release(); // wake the other workers too
                    return (false, default!);
                }

                if (_queue.Count == 0)
                {
                    continue;
                }

                var key = _queue.Dequeue();
                _processing.Add(key);
                _dirty.Remove(key);
                return (true, key);
            }
        }
    }

    /// <summary>Marks a key as worked; if it was added meanwhile it goes back in the queue.</summary>
    public void Done(TKey key)
    {
        var requeued = false;
        lock (_gate)
        {
            _processing.Remove(key);
            if (_dirty.Contains(key) && !_shutdown)
            {
                _queue.Enqueue(key);
                requeued = true;
            }
        }

        if (requeued)
        {
            _signal.Release();
        }
    }

    public void ShutDown()
    {
        lock (_gate)
        {
            _shutdown = true;
            _timer?.Dispose();
            _timer = null;
            _delayed.Clear();
            _dueOrder.Clear();
        }

        _signal.Release();
    }

    public void Dispose()
    {
        ShutDown();
        _signal.Dispose();
    }

    private TimeSpan Backoff(int failures)
    {
        var exp = Math.Min(failures, 30);
        var ticks = _baseDelay.Ticks * Math.Pow(2, exp);
        return ticks >= _maxDelay.Ticks ? _maxDelay : TimeSpan.FromTicks((long)ticks);
    }
}

namespace Hypercore.Reconciliation;

/// <summary>
/// Timed cancellation sources for short operations that almost always finish in time (the reconciler's inspect, issue
/// 15, twelfth pass): a source whose operation ended without it being cancelled is reset and handed out again, so a
/// pass no longer makes a source and a timer-queue timer (~200 bytes, and a timer inserted into and removed from the
/// runtime's timer queue) to give them back at once. A source that was cancelled (the limit passed, or the caller's
/// token fired) is never reused: <see cref="CancellationTokenSource.TryReset"/> refuses it and it is disposed.
/// </summary>
/// <remarks>
/// What is handed out must be given back once, after the operation that received its token is over (its task
/// completed): reset unregisters whatever the operation left registered on the token, and the next operation's limit
/// runs on the same timer. Thread-safe; keeps at most <see cref="MaxKept"/> idle sources.
/// </remarks>
internal sealed class TimeLimits(TimeProvider time)
{
    internal const int MaxKept = 64;

    private readonly Lock _gate = new();
    private readonly Stack<CancellationTokenSource> _idle = new();

    /// <summary>Sources made new (for tests): the rest were reused.</summary>
    public long Made => Interlocked.Read(ref _made);

    private long _made;

    /// <summary>A source that cancels itself after <paramref name="limit"/>.</summary>
    public CancellationTokenSource Rent(TimeSpan limit)
    {
        CancellationTokenSource? source = null;
        lock (_gate)
        {
            _idle.TryPop(out source);
        }

        if (source is null)
        {
            Interlocked.Increment(ref _made);
            return new CancellationTokenSource(limit, time);
        }

        source.CancelAfter(limit);
        return source;
    }

    /// <summary>Takes back a source from <see cref="Rent"/> once its operation is over; disposes it if it cannot be reused.</summary>
    public void Return(CancellationTokenSource source)
    {
        if (source.TryReset())
        {
            lock (_gate)
            {
                if (_idle.Count < MaxKept)
                {
                    _idle.Push(source);
                    return;
                }
            }
        }

        source.Dispose();
    }
}

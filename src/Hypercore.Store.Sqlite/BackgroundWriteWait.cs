using System.Diagnostics;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// Issue 15, tenth pass: lets a commit that would carry only background writes (the reconciler's claims and status
/// writes, no API request's) wait a short, bounded time for the next request write, so that both share one commit and
/// one fsync. Under a Running load (three durable writes per Create, two of them the reconciler's) a third to a half of
/// the commits carried only the reconciler's writes, each an fsync (~0.56 ms) and a writer wake-up on two saturated
/// cores; with a 1 ms bound commits per Create fell by ~45 % and daemon CPU per Create by ~20 % (bench/NOTES.md).
/// </summary>
/// <remarks>
/// A request write never waits: a batch that holds one commits at once, and one queued during a wait ends it at once.
/// The wait happens only while requests are arriving (a batch with a request write was taken within
/// <see cref="SqliteStoreOptions.BackgroundWriteWaitRecent"/>), so a lone reconciler write on an idle store commits without it. Durability is unchanged:
/// nobody is answered before the commit that holds their write.
/// </remarks>
internal sealed class BackgroundWriteWait
{
    private readonly object _gate = new(); // Monitor.Wait and Pulse, which System.Threading.Lock has not
    private readonly long _boundTicks;
    private readonly long _recentTicks;
    private bool _requestQueued; // under _gate
    private int _waiting; // 1 while the writer waits for a request write
    private long _lastRequestBatch = long.MinValue / 2; // writer thread only
    private long _waits;
    private long _joined;

    public BackgroundWriteWait(TimeSpan bound, TimeSpan recent)
    {
        _boundTicks = (long)(bound.TotalSeconds * Stopwatch.Frequency);
        _recentTicks = (long)(recent.TotalSeconds * Stopwatch.Frequency);
    }

    /// <summary>Batches that waited for a request write (tests, diagnostics).</summary>
    public long Waits => Interlocked.Read(ref _waits);

    /// <summary>Waits that a request write ended (it joined the batch) rather than the bound (tests, diagnostics).</summary>
    public long Joined => Interlocked.Read(ref _joined);

    /// <summary>
    /// Called by the caller that queued a request write, after it is in the queue: ends a wait at once. A volatile read
    /// when the writer is not waiting.
    /// </summary>
    public void RequestQueued()
    {
        // The write is in the queue before the flag is read; the writer sets the flag before it reads the queue. With a
        // full fence on both sides one of the two sees the other.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _waiting) != 0)
        {
            lock (_gate)
            {
                _requestQueued = true;
                Monitor.Pulse(_gate);
            }
        }
    }

    /// <summary>
    /// Takes the writes queued behind <paramref name="batch"/> (writer thread). When the batch then holds no request
    /// write, requests were arriving lately and there is room, waits up to the bound for one, taking each write queued
    /// meanwhile.
    /// </summary>
    public void Fill<T>(List<T> batch, int maxBatchSize, System.Threading.Channels.ChannelReader<T> reader)
        where T : IQueuedWrite
    {
        var request = false;
        foreach (var write in batch)
        {
            request |= write.IsRequest;
        }

        request |= Take(batch, maxBatchSize, reader);
        var now = Stopwatch.GetTimestamp();
        if (request)
        {
            _lastRequestBatch = now;
            return;
        }

        if (_boundTicks <= 0 || batch.Count >= maxBatchSize || now - _lastRequestBatch > _recentTicks)
        {
            return;
        }

        Interlocked.Increment(ref _waits);
        var deadline = now + _boundTicks;
        lock (_gate)
        {
            _requestQueued = false;
        }

        Interlocked.Exchange(ref _waiting, 1);
        try
        {
            var timedOut = false;
            while (true)
            {
                if (Take(batch, maxBatchSize, reader))
                {
                    Interlocked.Increment(ref _joined);
                    _lastRequestBatch = Stopwatch.GetTimestamp();
                    return;
                }

                var left = deadline - Stopwatch.GetTimestamp();
                if (timedOut || batch.Count >= maxBatchSize || left <= 0)
                {
                    return;
                }

                timedOut = !WaitForRequest(left);
            }
        }
        finally
        {
            Volatile.Write(ref _waiting, 0);
        }
    }

    /// <summary>
    /// Blocks until a request write is queued or the time is up. Managed waits count whole milliseconds, so the time is
    /// rounded up to one: the bound's resolution is a millisecond.
    /// </summary>
    private bool WaitForRequest(long ticks)
    {
        var ms = (int)Math.Min(int.MaxValue, Math.Ceiling(ticks * 1000.0 / Stopwatch.Frequency));
        lock (_gate)
        {
            if (!_requestQueued)
            {
                Monitor.Wait(_gate, ms);
            }

            var queued = _requestQueued;
            _requestQueued = false;
            return queued;
        }
    }

    /// <summary>Moves queued writes into the batch; true when one of them is a request write.</summary>
    private static bool Take<T>(List<T> batch, int maxBatchSize, System.Threading.Channels.ChannelReader<T> reader)
        where T : IQueuedWrite
    {
        var request = false;
        while (batch.Count < maxBatchSize && reader.TryRead(out var write))
        {
            batch.Add(write);
            request |= write.IsRequest;
        }

        return request;
    }

    /// <summary>What the wait needs to know of a queued write.</summary>
    internal interface IQueuedWrite
    {
        /// <summary>A write an API request waits for (a Create, a spec change, a delete), not the reconciler's.</summary>
        bool IsRequest { get; }
    }
}

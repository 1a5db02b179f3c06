using Hypercore.MicroVms;

namespace Hypercore.Reconciliation;

/// <summary>
/// Issue 15 (tidy5): the periodic resync spread over its interval (<see cref="ResyncRounds"/>). At 100,000 stopped
/// records the one-burst resync was ~4 s of both cores every 5 minutes, with API calls waiting behind it. Start-up
/// (every cached record queued at once) and the informer's relists (which queue only what changed) are unchanged.
/// </summary>
public sealed partial class ReconcilerHost
{
    private readonly object _resyncGate = new();
    private ResyncRounds? _rounds;
    private ITimer? _resyncTimer;

    /// <summary>Starts the rounds: the first begins one interval after start, as the one-burst resync did.</summary>
    private ITimer StartResync()
    {
        lock (_resyncGate)
        {
            _rounds = new ResyncRounds(_options.ResyncInterval);
            _resyncTimer = _time.CreateTimer(_ => ResyncSlice(), null, _options.ResyncInterval, Timeout.InfiniteTimeSpan);
            return _resyncTimer;
        }
    }

    private void ResyncSlice()
    {
        lock (_resyncGate)
        {
            if (_rounds is not { } rounds || _resyncTimer is not { } timer)
            {
                return;
            }

            if (rounds.RoundDone)
            {
                var keys = _informer.Unordered() is { Length: > 0 } cached ? Array.ConvertAll(cached, v => v.Key) : [];
                var gap = rounds.Begin(keys);
                timer.Change(gap, gap);
            }

            foreach (var key in rounds.NextSlice())
            {
                if (_informer.Get(key) is not null) // gone since the round began: nothing to resync (as before, only cached records)
                {
                    _queue.Add(key);
                }
            }
        }
    }
}

using Hypercore.MicroVms;

namespace Hypercore.Reconciliation;

/// <summary>
/// Issue 15 (tidy5): the periodic resync as rounds, one per <see cref="ReconcilerOptions.ResyncInterval"/>, each cut
/// into slices handed out evenly over the round instead of every record queued in one burst. A round takes the keys
/// cached when it begins and gives each of them out exactly once before the next round begins, so every record is
/// still queued (level-triggered) once in every interval. Up to <see cref="SliceSize"/> records a round is one slice
/// at its start, exactly the one-burst resync; above that, slices of about <see cref="SliceSize"/> records, but no
/// more than one per <see cref="MinSliceGap"/> (100,000 records at 5 minutes: 334 every second). Not thread-safe:
/// the host calls it from its resync timer only.
/// </summary>
public sealed class ResyncRounds(TimeSpan interval)
{
    /// <summary>Records per slice the rounds aim at: about 10–20 ms of a worker's CPU for stopped records.</summary>
    public const int SliceSize = 256;

    /// <summary>Slices are never closer together than this, so a large store does not mean a fast timer.</summary>
    public static readonly TimeSpan MinSliceGap = TimeSpan.FromSeconds(1);

    private VmKey[] _keys = [];
    private int _next;
    private int _slice;
    private int _slices;

    /// <summary>Whether the current round has handed out all its slices (also before the first round).</summary>
    public bool RoundDone => _slice >= _slices;

    /// <summary>Number of slices a round over <paramref name="count"/> records is cut into.</summary>
    public static int SlicesFor(int count, TimeSpan interval)
    {
        var most = (int)Math.Clamp(interval.Ticks / MinSliceGap.Ticks, 1, int.MaxValue);
        return Math.Clamp((count + SliceSize - 1) / SliceSize, 1, most);
    }

    /// <summary>Begins a round over <paramref name="keys"/>; returns the time between two of its slices.</summary>
    public TimeSpan Begin(VmKey[] keys)
    {
        _keys = keys;
        _next = 0;
        _slice = 0;
        _slices = SlicesFor(keys.Length, interval);
        return interval / _slices;
    }

    /// <summary>The round's next slice: an even share of the keys it has not given out yet (empty once the round is done).</summary>
    public ReadOnlySpan<VmKey> NextSlice()
    {
        if (RoundDone)
        {
            return [];
        }

        var slicesLeft = _slices - _slice;
        var take = (_keys.Length - _next + slicesLeft - 1) / slicesLeft;
        var slice = _keys.AsSpan(_next, take);
        _next += take;
        _slice++;
        if (RoundDone)
        {
            _keys = []; // the span still reads the array; the round no longer holds it
        }

        return slice;
    }
}

using System.Threading.Channels;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// In-process fan-out of committed changes. Only the store's writer publishes, after each commit and in commit
/// order. Every watcher has its own bounded buffer; one that overflows has its backlog dropped and gets a
/// <see cref="StoreEventType.Resync"/>, so a stalled reader costs memory bounded by the buffer and never blocks a write.
/// </summary>
internal sealed class WatchHub(int capacity, Action<int> onOverflow)
{
    private static readonly StoreEvent ResyncEvent = new(StoreEventType.Resync, null);

    private readonly Lock _gate = new();
    private Watcher[] _watchers = [];
    private bool _completed;

    public int Count => Volatile.Read(ref _watchers).Length;

    public Watcher Subscribe()
    {
        var watcher = new Watcher(Channel.CreateBounded<StoreEvent>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait, // TryWrite reports "full" instead of dropping silently
            SingleWriter = true,
            SingleReader = false, // the publisher drains the backlog on overflow
        }));
        lock (_gate)
        {
            if (_completed)
            {
                watcher.Channel.Writer.TryComplete();
            }
            else
            {
                _watchers = [.. _watchers, watcher];
            }
        }

        return watcher;
    }

    public void Unsubscribe(Watcher watcher)
    {
        lock (_gate)
        {
            _watchers = Array.FindAll(_watchers, w => w != watcher);
        }

        watcher.Channel.Writer.TryComplete();
    }

    /// <summary>Called only by the writer, so events reach each watcher in commit order.</summary>
    public void Publish(StoreEvent ev)
    {
        foreach (var watcher in Volatile.Read(ref _watchers))
        {
            var writer = watcher.Channel.Writer;
            if (writer.TryWrite(ev))
            {
                continue;
            }

            // Full (or completed, in which case everything below is a harmless no-op). The backlog is useless to a
            // watcher that must re-list anyway, so drop it, including this event: the re-list will show it.
            var reader = watcher.Channel.Reader;
            while (reader.TryRead(out _))
            {
            }

            if (writer.TryWrite(ResyncEvent))
            {
                onOverflow(capacity);
            }
        }
    }

    /// <summary>Ends every watch stream (store disposed).</summary>
    public void CompleteAll()
    {
        Watcher[] all;
        lock (_gate)
        {
            _completed = true;
            all = _watchers;
            _watchers = [];
        }

        foreach (var watcher in all)
        {
            watcher.Channel.Writer.TryComplete();
        }
    }

    internal sealed class Watcher(Channel<StoreEvent> channel)
    {
        public Channel<StoreEvent> Channel { get; } = channel;
    }
}

namespace Hypercore.Store.Sqlite;

/// <summary>
/// One watch subscription as an async stream. Hand-written rather than an async iterator so that the
/// subscription exists from the WatchAsync call, ends on dispose even if never enumerated, and a dispose while
/// a MoveNext is waiting simply ends that wait.
/// </summary>
internal sealed class WatchStream : IAsyncEnumerable<StoreEvent>
{
    private readonly WatchHub _hub;
    private readonly WatchHub.Watcher _watcher;
    private readonly CancellationToken _token;
    private readonly CancellationTokenRegistration _registration;
    private int _enumerated;

    public WatchStream(WatchHub hub, CancellationToken token)
    {
        _hub = hub;
        _watcher = hub.Subscribe();
        _token = token;
        _registration = token.Register(static state => ((WatchStream)state!).Close(), this);
    }

    public IAsyncEnumerator<StoreEvent> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _enumerated, 1) != 0)
        {
            throw new InvalidOperationException("a watch stream can be enumerated only once; call WatchAsync again");
        }

        return new Enumerator(this, cancellationToken);
    }

    private void Close() => _hub.Unsubscribe(_watcher);

    private sealed class Enumerator(WatchStream stream, CancellationToken cancellationToken) : IAsyncEnumerator<StoreEvent>
    {
        public StoreEvent Current { get; private set; } = null!;

        public async ValueTask<bool> MoveNextAsync()
        {
            var reader = stream._watcher.Channel.Reader;
            while (true)
            {
                // The WatchAsync token closes the channel when cancelled; report that as cancellation, not as the end.
                stream._token.ThrowIfCancellationRequested();
                if (reader.TryRead(out var ev))
                {
                    Current = ev;
                    return true;
                }

                if (!await reader.WaitToReadAsync(cancellationToken))
                {
                    stream._token.ThrowIfCancellationRequested();
                    return false;
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await stream._registration.DisposeAsync();
            stream.Close();
        }
    }
}

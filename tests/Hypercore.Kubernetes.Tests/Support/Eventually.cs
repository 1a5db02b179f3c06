namespace Hypercore.Kubernetes.Tests.Support;

public static class Eventually
{
    /// <summary>Polls until <paramref name="condition"/> holds; fails with <paramref name="what"/> after the timeout.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"timed out waiting for {what}");
            }

            await Task.Delay(50);
        }
    }

    public static Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null) =>
        UntilAsync(() => Task.FromResult(condition()), what, timeout);
}

/// <summary>Reads a store watch in the background so tests can wait for a matching event.</summary>
public sealed class WatchRecorder : IAsyncDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private readonly List<Hypercore.Store.StoreEvent> _events = [];
    private readonly Task _reader;

    public WatchRecorder(Hypercore.Store.IMicroVmStore store)
    {
        var watch = store.WatchAsync(_cts.Token);
        _reader = Task.Run(async () =>
        {
            try
            {
                await foreach (var ev in watch.WithCancellation(_cts.Token))
                {
                    lock (_events)
                    {
                        _events.Add(ev);
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
    }

    public IReadOnlyList<Hypercore.Store.StoreEvent> Events
    {
        get
        {
            lock (_events)
            {
                return _events.ToList();
            }
        }
    }

    public async Task<Hypercore.Store.StoreEvent> WaitForAsync(Func<Hypercore.Store.StoreEvent, bool> match, string what, TimeSpan? timeout = null)
    {
        Hypercore.Store.StoreEvent? found = null;
        await Eventually.UntilAsync(() => (found = Events.FirstOrDefault(match)) is not null, what + $" (seen: {string.Join(", ", Events.Select(e => $"{e.Type} {e.MicroVm?.Key}"))})", timeout);
        return found!;
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        await _reader;
        _cts.Dispose();
    }
}

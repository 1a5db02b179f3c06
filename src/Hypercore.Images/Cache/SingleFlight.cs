namespace Hypercore.Images.Cache;

/// <summary>
/// One run of a piece of work per key however many callers ask at once; later callers await the same task.
/// The work runs on the cache's lifetime token, not a caller's, so one caller giving up does not fail the others.
/// </summary>
internal sealed class SingleFlight
{
    private readonly Dictionary<string, Task> _running = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public Task<T> RunAsync<T>(string key, Func<Task<T>> work, CancellationToken callerToken)
    {
        Task<T> task;
        lock (_lock)
        {
            if (_running.TryGetValue(key, out var existing))
            {
                task = (Task<T>)existing;
            }
            else
            {
                task = Task.Run(work);
                _running[key] = task;
                _ = task.ContinueWith(_ => { lock (_lock) _running.Remove(key); }, CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
        return task.WaitAsync(callerToken);
    }

    public bool IsRunning(string key)
    {
        lock (_lock) return _running.ContainsKey(key);
    }
}

using System.Collections.Concurrent;

namespace Hypercore.Benchmarks.Api;

/// <summary>
/// Per-phase latency samples of the API benchmark's server (issue 15 goal 2: where the Create p99 comes from):
/// the store writer's queue wait and commit time, Kestrel's request duration, and the thread pool's queue.
/// </summary>
public sealed class PhaseSamples
{
    private readonly ConcurrentDictionary<string, ConcurrentQueue<double>> _samples = new();
    private readonly List<double> _poolQueue = [];

    public void Add(string instrument, double seconds) =>
        _samples.GetOrAdd(instrument, _ => new ConcurrentQueue<double>()).Enqueue(seconds * 1000);

    /// <summary>How many samples of <paramref name="instrument"/> there are and their mean (ms).</summary>
    public (double Count, double MeanMs) Summary(string instrument) =>
        _samples.TryGetValue(instrument, out var q) && !q.IsEmpty ? (q.Count, q.Average()) : (0, 0);

    /// <summary>Samples ThreadPool.PendingWorkItemCount every 5 ms until cancelled (starvation shows as a queue).</summary>
    public async Task SampleThreadPoolAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                lock (_poolQueue)
                {
                    _poolQueue.Add(ThreadPool.PendingWorkItemCount);
                }

                await Task.Delay(5, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public void Report(Dictionary<string, double> result)
    {
        foreach (var (name, key) in (ReadOnlySpan<(string, string)>)[
            ("hypercore.store.write.queued", "queued"), ("hypercore.store.commit.duration", "commit"), ("http.server.request.duration", "server")])
        {
            var values = _samples.TryGetValue(name, out var q) ? q.Order().ToArray() : [];
            result[$"{key}_n"] = values.Length;
            result[$"{key}_mean_ms"] = values.Length == 0 ? 0 : values.Average();
            result[$"{key}_p50_ms"] = Percentile(values, 0.50);
            result[$"{key}_p99_ms"] = Percentile(values, 0.99);
            result[$"{key}_max_ms"] = values.Length == 0 ? 0 : values[^1];
        }

        lock (_poolQueue)
        {
            result["pool_queue_mean"] = _poolQueue.Count == 0 ? 0 : _poolQueue.Average();
            result["pool_queue_max"] = _poolQueue.Count == 0 ? 0 : _poolQueue.Max();
            result["pool_threads"] = ThreadPool.ThreadCount;
        }
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
}

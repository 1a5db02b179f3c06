using Hypercore.Informers;
using Hypercore.MicroVms;
using Microsoft.Extensions.Hosting;

namespace Hypercore.Telemetry.Metrics;

/// <summary>
/// Counts MicroVMs by phase from the shared informer's events, so a scrape reads a small array instead of listing
/// the store: a 10,000-record list on every scrape would cost more than everything else the endpoint does.
/// </summary>
/// <remarks>
/// Issue 15 (heap11): one count per phase, moved by each event, and nothing per record. The informer's events say
/// enough: Added is a record it did not cache, Modified carries the cached record it replaces
/// (<see cref="InformerEvent.Previous"/>) and Deleted the cached record it drops, all under the informer's lock in one
/// order, and a new handler first sees every cached record as Added. A dictionary of each record's phase (what this
/// kept before) was one more entry per record in a large-object-heap array that grew with the node, and a young key
/// written into that old array at every Create: under goal 2's Running load, card-marked work for every young
/// collection, and a new array at every doubling.
/// </remarks>
public sealed class PhaseCounter : BackgroundService
{
    private static readonly Phase[] Phases = Enum.GetValues<Phase>();

    private readonly MicroVmInformer _informer;
    private readonly object _gate = new();
    private readonly int[] _counts = new int[Phases.Length];
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public PhaseCounter(MicroVmInformer informer) => _informer = informer;

    /// <summary>Completes after the informer's first full list.</summary>
    public Task Synced => _synced.Task;

    /// <summary>How many records are in each phase now; every phase is present (0 when none).</summary>
    public IReadOnlyList<(Phase Phase, int Count)> Snapshot()
    {
        int[] counts;
        lock (_gate)
        {
            counts = (int[])_counts.Clone();
        }

        return Phases.Select(p => (p, counts[(int)p])).ToList();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The informer has already dropped stale and duplicate events; this only moves the counts (OnEvent).
        using var subscription = _informer.AddHandler(OnEvent);
        try
        {
            await _informer.Synced.WaitAsync(stoppingToken);
            _synced.TrySetResult();
            await Task.Delay(Timeout.Infinite, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Moves the counts by one informer event (on the informer's loop, under its lock).</summary>
    internal void OnEvent(InformerEvent ev)
    {
        lock (_gate)
        {
            switch (ev.Type)
            {
                case InformerEventType.Added:
                    _counts[(int)ev.MicroVm.Status.Phase]++;
                    break;
                case InformerEventType.Modified:
                    // Previous is the cached record this one replaces: the one counted.
                    _counts[(int)(ev.Previous ?? ev.MicroVm).Status.Phase]--;
                    _counts[(int)ev.MicroVm.Status.Phase]++;
                    break;
                case InformerEventType.Deleted:
                    _counts[(int)ev.MicroVm.Status.Phase]--; // the cached record dropped
                    break;
            }
        }
    }
}

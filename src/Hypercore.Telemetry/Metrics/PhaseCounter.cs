using Hypercore.Informers;
using Hypercore.MicroVms;
using Microsoft.Extensions.Hosting;

namespace Hypercore.Telemetry.Metrics;

/// <summary>
/// Counts MicroVMs by phase from the shared informer's events, so a scrape reads a small array instead of listing
/// the store: a 10,000-record list on every scrape would cost more than everything else the endpoint does.
/// </summary>
public sealed class PhaseCounter : BackgroundService
{
    private static readonly Phase[] Phases = Enum.GetValues<Phase>();

    private readonly MicroVmInformer _informer;
    private readonly object _gate = new();
    private readonly Dictionary<VmKey, Phase> _phases = [];
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public PhaseCounter(MicroVmInformer informer) => _informer = informer;

    /// <summary>Completes after the informer's first full list.</summary>
    public Task Synced => _synced.Task;

    /// <summary>How many records are in each phase now; every phase is present (0 when none).</summary>
    public IReadOnlyList<(Phase Phase, int Count)> Snapshot()
    {
        var counts = new int[Phases.Length];
        lock (_gate)
        {
            foreach (var phase in _phases.Values)
            {
                counts[(int)phase]++;
            }
        }

        return Phases.Select(p => (p, counts[(int)p])).ToList();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The informer has already dropped stale and duplicate events; this only keeps a phase per key.
        using var subscription = _informer.AddHandler(ev =>
        {
            lock (_gate)
            {
                if (ev.Type == InformerEventType.Deleted)
                {
                    _phases.Remove(ev.MicroVm.Key);
                }
                else
                {
                    _phases[ev.MicroVm.Key] = ev.MicroVm.Status.Phase;
                }
            }
        });
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
}

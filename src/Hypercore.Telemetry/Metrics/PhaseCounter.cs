using System.Globalization;
using Hypercore.MicroVms;
using Hypercore.Store;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Hypercore.Telemetry.Metrics;

/// <summary>
/// Counts MicroVMs by phase from the store's watch (one list at start and after each Resync event), so a scrape
/// reads a small array instead of listing the store: a 10,000-record list on every scrape would cost more than
/// everything else the endpoint does.
/// </summary>
public sealed partial class PhaseCounter : BackgroundService
{
    private static readonly Phase[] Phases = Enum.GetValues<Phase>();

    private readonly IMicroVmStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger<PhaseCounter> _log;
    private readonly object _gate = new();
    private readonly Dictionary<VmKey, (Phase Phase, string ResourceVersion)> _phases = [];
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public PhaseCounter(IMicroVmStore store, TimeProvider time, ILogger<PhaseCounter> log)
    {
        _store = store;
        _time = time;
        _log = log;
    }

    /// <summary>Completes after the first full list.</summary>
    public Task Synced => _synced.Task;

    /// <summary>How many records are in each phase now; every phase is present (0 when none).</summary>
    public IReadOnlyList<(Phase Phase, int Count)> Snapshot()
    {
        var counts = new int[Phases.Length];
        lock (_gate)
        {
            foreach (var (phase, _) in _phases.Values)
            {
                counts[(int)phase]++;
            }
        }

        return Phases.Select(p => (p, counts[(int)p])).ToList();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(500);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await FollowAsync(stoppingToken);
                return;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogFollowFailed(_store.Name, ex.Message);
                await Task.Delay(delay, _time, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
        }
    }

    private async Task FollowAsync(CancellationToken ct)
    {
        // Subscribe before listing (as the reconciler does), so no change between the list and the watch is lost.
        await using var watch = _store.WatchAsync(ct).GetAsyncEnumerator(ct);
        var move = watch.MoveNextAsync().AsTask();
        await RelistAsync(ct);
        while (await move)
        {
            var ev = watch.Current;
            switch (ev.Type)
            {
                case StoreEventType.Resync:
                    await RelistAsync(ct);
                    break;
                case StoreEventType.Deleted when ev.MicroVm is { } gone:
                    lock (_gate)
                    {
                        if (_phases.TryGetValue(gone.Key, out var known) && !IsOlder(gone.ResourceVersion, known.ResourceVersion))
                        {
                            _phases.Remove(gone.Key);
                        }
                    }

                    break;
                case StoreEventType.Added or StoreEventType.Modified when ev.MicroVm is { } vm:
                    lock (_gate)
                    {
                        // An event queued before the list can arrive after it: never let it overwrite newer state.
                        if (!_phases.TryGetValue(vm.Key, out var known) || !IsOlder(vm.ResourceVersion, known.ResourceVersion))
                        {
                            _phases[vm.Key] = (vm.Status.Phase, vm.ResourceVersion);
                        }
                    }

                    break;
            }

            move = watch.MoveNextAsync().AsTask();
        }
    }

    private async Task RelistAsync(CancellationToken ct)
    {
        var all = await _store.ListAsync(null, ct);
        lock (_gate)
        {
            _phases.Clear();
            foreach (var vm in all)
            {
                _phases[vm.Key] = (vm.Status.Phase, vm.ResourceVersion);
            }
        }

        _synced.TrySetResult();
    }

    /// <summary>Resource versions are opaque; when both are integers (SQLite, etcd) a smaller one is older.</summary>
    internal static bool IsOlder(string candidate, string known) =>
        long.TryParse(candidate, NumberStyles.None, CultureInfo.InvariantCulture, out var c) &&
        long.TryParse(known, NumberStyles.None, CultureInfo.InvariantCulture, out var k) &&
        c < k;

    [LoggerMessage(4000, LogLevel.Warning, "phase metrics: following the {Store} store failed ({Message}); retrying")]
    private partial void LogFollowFailed(string store, string message);
}

using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Store;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Reconciliation;

/// <summary>
/// Runs the loop: watch the store and queue keys; adopt what the drivers find running at start; queue everything
/// again every resync interval; N workers take keys from the queue and reconcile them.
/// </summary>
public sealed partial class ReconcilerHost : BackgroundService
{
    private readonly IMicroVmStore _store;
    private readonly DriverRegistry _drivers;
    private readonly Reconciler _reconciler;
    private readonly ReconcilerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ReconcilerHost> _log;
    private readonly WorkQueue<VmKey> _queue;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ReconcilerHost(IMicroVmStore store, DriverRegistry drivers, Reconciler reconciler, IOptions<ReconcilerOptions> options, TimeProvider time, ILogger<ReconcilerHost> log)
    {
        _store = store;
        _drivers = drivers;
        _reconciler = reconciler;
        _options = options.Value;
        _time = time;
        _log = log;
        _queue = new WorkQueue<VmKey>(time, _options.BackoffBase, _options.BackoffCap);
    }

    /// <summary>The queue, for metrics (depth) and tests.</summary>
    public WorkQueue<VmKey> Queue => _queue;

    /// <summary>Completes once the first list has been queued and workers are running.</summary>
    public Task Ready => _ready.Task;

    /// <summary>Number of reconciles finished since start (for benchmarks and tests).</summary>
    public long Completed => Interlocked.Read(ref _completed);

    private long _completed;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Subscribe before listing so that no change between the list and the watch is missed.
        using var watchCts = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var watch = _store.WatchAsync(watchCts.Token).GetAsyncEnumerator(watchCts.Token);
        var firstMove = watch.MoveNextAsync().AsTask();

        await AdoptAsync(stoppingToken);
        var workers = Enumerable.Range(0, _options.Workers).Select(_ => Task.Run(() => WorkAsync(stoppingToken), stoppingToken)).ToList();
        using var resync = _time.CreateTimer(_ => _ = ResyncAsync(stoppingToken), null, _options.ResyncInterval, _options.ResyncInterval);
        _ready.TrySetResult();

        try
        {
            var move = firstMove;
            while (await move)
            {
                var ev = watch.Current;
                if (ev.Type == StoreEventType.Resync)
                {
                    await ResyncAsync(stoppingToken);
                }
                else if (ev.MicroVm is { } vm && IsSpecChange(ev.Type, vm))
                {
                    _queue.Add(vm.Key);
                }

                move = watch.MoveNextAsync().AsTask();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            _queue.ShutDown();
            await watch.DisposeAsync();
            await Task.WhenAll(workers.Select(w => w.ContinueWith(_ => { }, TaskScheduler.Default)));
        }
    }

    /// <summary>
    /// Logs which providers this node can use, matches what the drivers find alive to records by uid, and queues
    /// every record. Adopted VMs are simply reconciled: the driver reports them running, so nothing is restarted.
    /// </summary>
    private async Task AdoptAsync(CancellationToken ct)
    {
        foreach (var driver in _drivers.All)
        {
            var availability = await driver.CheckAvailabilityAsync(ct);
            LogProvider(driver.Name, availability.Available ? "usable" : "NOT usable", availability.Detail);
        }

        var records = await ListWithRetryAsync(ct);
        var byUid = records.ToDictionary(r => r.Uid);
        foreach (var driver in _drivers.All)
        {
            IReadOnlyList<VmRuntimeInfo> found;
            try
            {
                found = await driver.ListAsync(ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogListFailed(driver.Name, ex.Message);
                continue;
            }

            foreach (var info in found)
            {
                if (byUid.TryGetValue(info.Uid, out var vm))
                {
                    LogAdopted(vm.Key, driver.Name, info.Pid, info.State);
                }
                else
                {
                    LogOrphan(driver.Name, info.Uid, info.Pid);
                }
            }
        }

        foreach (var vm in records)
        {
            _seen[vm.Key] = (vm.Generation, vm.IsDeleting);
            _queue.Add(vm.Key);
        }
    }

    /// <summary>
    /// Status-only writes (most of them ours) do not queue the key: otherwise every status write would trigger another
    /// pass and defeat the backoff (controller-runtime's GenerationChangedPredicate). Live state is polled instead.
    /// </summary>
    private bool IsSpecChange(StoreEventType type, MicroVm vm)
    {
        if (type == StoreEventType.Deleted)
        {
            _seen.TryRemove(vm.Key, out _);
            return true;
        }

        var now = (vm.Generation, vm.IsDeleting);
        var before = _seen.GetValueOrDefault(vm.Key);
        _seen[vm.Key] = now;
        return type == StoreEventType.Added || before != now;
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<VmKey, (long Generation, bool Deleting)> _seen = new();

    private async Task<IReadOnlyList<MicroVm>> ListWithRetryAsync(CancellationToken ct)
    {
        var delay = _options.BackoffBase;
        while (true)
        {
            try
            {
                return await _store.ListAsync(null, ct);
            }
            catch (StoreException ex)
            {
                LogListFailed(_store.Name, ex.Message);
                await Task.Delay(delay, _time, ct);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.BackoffCap.Ticks));
            }
        }
    }

    private async Task ResyncAsync(CancellationToken ct)
    {
        try
        {
            foreach (var vm in await _store.ListAsync(null, ct))
            {
                _queue.Add(vm.Key);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogListFailed(_store.Name, ex.Message);
        }
    }

    private async Task WorkAsync(CancellationToken ct)
    {
        while (true)
        {
            var (ok, key) = await _queue.TakeAsync(ct);
            if (!ok)
            {
                return;
            }

            try
            {
                var result = await _reconciler.ReconcileAsync(key, ct);
                switch (result.Outcome)
                {
                    case ReconcileOutcome.Backoff:
                        _queue.AddRateLimited(key);
                        break;
                    case ReconcileOutcome.Poll:
                        _queue.Forget(key);
                        _queue.AddAfter(key, _options.PollInterval);
                        break;
                    case ReconcileOutcome.After:
                        _queue.Forget(key);
                        _queue.AddAfter(key, result.Delay);
                        break;
                    default:
                        _queue.Forget(key);
                        break;
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            finally
            {
                _queue.Done(key);
                Interlocked.Increment(ref _completed);
            }
        }
    }

    [LoggerMessage(1100, LogLevel.Information, "provider {Provider}: {State} ({Detail})")]
    private partial void LogProvider(string provider, string state, string detail);

    [LoggerMessage(1101, LogLevel.Information, "{Key}: adopted running {Provider} instance (pid {Pid}, {State})")]
    private partial void LogAdopted(VmKey key, string provider, int? pid, LiveState state);

    [LoggerMessage(1102, LogLevel.Warning, "{Provider}: instance {Uid} (pid {Pid}) has no record in the store; left alone")]
    private partial void LogOrphan(string provider, string uid, int? pid);

    [LoggerMessage(1103, LogLevel.Warning, "{Source}: list failed: {Message}")]
    private partial void LogListFailed(string source, string message);
}

public static class ReconcilerServiceCollectionExtensions
{
    /// <summary>Adds the reconciler, its host and options validation. The store and drivers are added by their own projects.</summary>
    public static IServiceCollection AddReconciler(this IServiceCollection services, Action<ReconcilerOptions>? configure = null)
    {
        var builder = services.AddOptions<ReconcilerOptions>();
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        builder.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ReconcilerOptions>, ReconcilerOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<Reconciler>();
        services.TryAddSingleton<ReconcilerHost>();
        services.AddHostedService(sp => sp.GetRequiredService<ReconcilerHost>());
        return services;
    }
}

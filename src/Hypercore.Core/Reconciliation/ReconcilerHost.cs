using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Hypercore.Composition;

namespace Hypercore.Reconciliation;

/// <summary>
/// Runs the loop: follows the shared <see cref="MicroVmInformer"/> and queues keys whose spec changed; queues every
/// cached record again every resync interval; N workers take keys from the queue and reconcile them. At start every
/// record is queued at once (reconciling a VM is what adopts it: the driver finds it running by uid), while what the
/// drivers find running is listed in parallel, each with a time limit, only to report adoptions and orphans.
/// </summary>
public sealed partial class ReconcilerHost : BackgroundService
{
    private readonly MicroVmInformer _informer;
    private readonly DriverRegistry _drivers;
    private readonly Reconciler _reconciler;
    private readonly ReconcilerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ReconcilerHost> _log;
    private readonly WorkQueue<VmKey> _queue;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ReconcilerHost(
        MicroVmInformer informer, DriverRegistry drivers, Reconciler reconciler, IOptions<ReconcilerOptions> options, TimeProvider time, ILogger<ReconcilerHost> log,
        IMovedAwayLookup? movedAway = null)
    {
        _movedAway = movedAway;
        _informer = informer;
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

    /// <summary>Completes once every driver's start-up listing (adoption report) has finished or timed out.</summary>
    public Task Adopted => _adopted.Task;

    /// <summary>Number of reconciles finished since start (for benchmarks and tests).</summary>
    public long Completed => Interlocked.Read(ref _completed);

    /// <summary>Number of workers running (the Reconciler:Workers setting).</summary>
    public int WorkerCount => _options.Workers;

    private long _completed;
    private readonly IMovedAwayLookup? _movedAway;
    private readonly TaskCompletionSource _adopted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var workers = Enumerable.Range(0, _options.Workers).Select(_ => Task.Run(() => WorkAsync(stoppingToken), stoppingToken)).ToList();
        IDisposable? subscription = null;
        IDisposable? exits = null;
        try
        {
            await _informer.Synced.WaitAsync(stoppingToken);

            // Adoption is a report only, so it never delays a reconcile: a hypervisor that hangs while being listed
            // (e.g. a frozen QEMU) holds up nothing but its own line in the log.
            var adoption = ReportAdoptionAsync(_informer.List(), stoppingToken);
            _ = adoption.ContinueWith(_ => _adopted.TrySetResult(), TaskScheduler.Default);

            // Issue 15, thirteenth pass: the key is queued under the informer's lock, as before, and handed to a waiting
            // worker once the lock is released, on the informer's thread (WorkQueue.HandOutHere): the pass runs there
            // up to its claim, without a thread-pool hand-off (and the wake-up of a parked thread) per new VM.
            subscription = _informer.AddHandler(ev =>
            {
                if (IsSpecChange(ev))
                {
                    _queue.AddHeld(ev.MicroVm.Key);
                }

                if (ev.Type == InformerEventType.Modified && ev.Previous is { } before)
                {
                    _reconciler.FollowHere(before, ev.MicroVm); // issue 15: no older copy kept per record (Reconciler.Moved.cs)
                }
            }, () => _queue.HandOutHere(1)); // one change queues one key at most; a list's many keys go through the pool
            exits = SubscribeLiveStateChanges(); // issue 15: ReconcilerHost.Exits.cs
            using var resync = StartResync(); // issue 15: spread over the interval, ReconcilerHost.Resync.cs
            _ready.TrySetResult();
            await Task.Delay(Timeout.InfiniteTimeSpan, _time, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            subscription?.Dispose();
            exits?.Dispose();
            _queue.ShutDown();
            await Task.WhenAll(workers.Select(w => w.ContinueWith(_ => { }, TaskScheduler.Default)));
        }
    }

    /// <summary>
    /// Status-only writes (most of them ours) do not queue the key: otherwise every status write would trigger another
    /// pass and defeat the backoff (controller-runtime's GenerationChangedPredicate). Live state is polled instead.
    /// </summary>
    private static bool IsSpecChange(InformerEvent ev) =>
        ev.Type != InformerEventType.Modified || ev.Previous is not { } before ||
        before.Generation != ev.MicroVm.Generation || before.IsDeleting != ev.MicroVm.IsDeleting || before.Uid != ev.MicroVm.Uid;

    /// <summary>
    /// Logs which providers this node can use and matches what each driver finds alive to records by uid. Every
    /// driver is asked at once, each with <see cref="ReconcilerOptions.AdoptionTimeout"/>.
    /// </summary>
    private async Task ReportAdoptionAsync(IReadOnlyList<MicroVm> records, CancellationToken ct)
    {
        var byUid = records.ToDictionary(r => r.Uid);
        Task<IReadOnlyList<MicroVm>>? movedList = null;
        var drivers = _drivers.All.ToList();

        // Availability first (a version probe each, asked of all at once), logged in registration order so the
        // start-up report reads the same every time; then every driver lists what it finds, again all at once.
        var availability = await Task.WhenAll(drivers.Select(d => Task.Run(() => LimitedAsync(d, d.CheckAvailabilityAsync), ct)));
        for (var i = 0; i < drivers.Count; i++)
        {
            if (availability[i] is { } a)
            {
                LogProvider(drivers[i].Name, a.Available ? "usable" : "NOT usable", a.Detail);
            }
        }

        await Task.WhenAll(drivers.Select(d => Task.Run(() => ReportAsync(d), ct)));

        async Task ReportAsync(IHypervisorDriver driver)
        {
            foreach (var info in await LimitedAsync(driver, driver.ListAsync) ?? [])
            {
                if (byUid.TryGetValue(info.Uid, out var vm))
                {
                    LogAdopted(vm.Key, driver.Name, info.Pid, info.State);
                }
                else if (await MovedAwayAsync(info.Uid) is { } moved)
                {
                    await RemoveMovedAsync(moved, driver, info);
                }
                else
                {
                    LogOrphan(driver.Name, info.Uid, info.Pid);
                }
            }
        }

        // Kubernetes issue 13: asked once, and only when a driver found something without a record.
        async Task<MicroVm?> MovedAwayAsync(string uid)
        {
            if (_movedAway is null)
            {
                return null;
            }

            try
            {
                movedList ??= _movedAway.MovedAwayAsync(ct);
                return (await movedList).FirstOrDefault(v => v.Uid == uid);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogListFailed("moved-away MicroVMs", ex.Message);
                return null;
            }
        }

        async Task RemoveMovedAsync(MicroVm moved, IHypervisorDriver driver, VmRuntimeInfo info)
        {
            LogMovedAway(moved.Key, driver.Name, info.Uid, info.Pid);
            try
            {
                await _reconciler.RemoveLeftoverAsync(moved, driver, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogListFailed(driver.Name, $"removing the leftover of {moved.Key}: {ex.Message}");
            }
        }

        async Task<T?> LimitedAsync<T>(IHypervisorDriver driver, Func<CancellationToken, Task<T>> call)
            where T : class
        {
            using var timeout = new CancellationTokenSource(_options.AdoptionTimeout, _time);
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
            try
            {
                return await call(limit.Token).WaitAsync(limit.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                LogListFailed(driver.Name, $"no answer within {_options.AdoptionTimeout.TotalSeconds:0.#} s; its VMs are reconciled one by one anyway");
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogListFailed(driver.Name, ex.Message);
            }

            return null;
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
                var result = await _reconciler.ReconcilePassAsync(key, ct);
                switch (result.Outcome)
                {
                    case ReconcileOutcome.Backoff:
                        _queue.AddRateLimited(key);
                        break;
                    case ReconcileOutcome.Poll:
                        _queue.Forget(key);
                        _queue.AddAfter(key, NextPollDelay(), PollSpreading.Step); // issue 15: ReconcilerHost.Polls.cs
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

    [LoggerMessage(1406, LogLevel.Warning, "{Key}: moved to another node while this node was lost; removing the {Provider} instance {Uid} (pid {Pid}) left here")]
    private partial void LogMovedAway(VmKey key, string provider, string uid, int? pid);

    [LoggerMessage(1103, LogLevel.Warning, "{Source}: list failed: {Message}")]
    private partial void LogListFailed(string source, string message);
}

public static class ReconcilerServiceCollectionExtensions
{
    /// <summary>Adds the reconciler, its host and options validation. The store and drivers are added by their own projects.</summary>
    public static IServiceCollection AddReconciler(this IServiceCollection services, Action<ReconcilerOptions>? configure = null)
    {
        services.AddValidatedOptions<ReconcilerOptions, ReconcilerOptionsValidator>(configure);
        services.AddMicroVmInformer();
        services.TryAddSingleton(TimeProvider.System);
        // Factories, not implementation types: Composition/ServiceFactories says why.
        services.TryAddSingleton(sp => new Reconciler(
            sp.GetRequiredService<Store.IMicroVmStore>(), sp.GetRequiredService<DriverRegistry>(), sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IOptions<ReconcilerOptions>>(), sp.LoggerFor<Reconciler>(), sp.GetServices<IStartStep>(),
            sp.GetService<GuestHealth.LivenessSignals>(), sp.GetService<Informers.IMicroVmCache>(), sp.GetService<Store.IResourceVersionCheck>()));
        // Issue 15 (claim14): a Create made in this process is stored claimed by this reconciler, where the store can do that in one write.
        services.TryAddSingleton<IClaimAtCreate>(sp => sp.GetRequiredService<Reconciler>());
        services.TryAddSingleton(sp => new ReconcilerHost(
            sp.GetRequiredService<MicroVmInformer>(), sp.GetRequiredService<DriverRegistry>(), sp.GetRequiredService<Reconciler>(),
            sp.GetRequiredService<IOptions<ReconcilerOptions>>(), sp.GetRequiredService<TimeProvider>(), sp.LoggerFor<ReconcilerHost>(),
            sp.GetService<IMovedAwayLookup>()));
        services.AddHostedService(sp => sp.GetRequiredService<ReconcilerHost>());
        return services;
    }
}

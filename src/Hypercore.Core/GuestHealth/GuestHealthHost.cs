using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Hypercore.Composition;

namespace Hypercore.GuestHealth;

/// <summary>
/// Drives <see cref="GuestHealthMonitor"/> from the shared informer's cache every <see cref="GuestHealthOptions.TickInterval"/>
/// over the records it can act on (<see cref="ProbeCandidates"/>)
/// (no store call unless something changed), and queues a VM for reconcile the moment its liveness probe fails.
/// </summary>
public sealed partial class GuestHealthHost(
    GuestHealthMonitor monitor, MicroVmInformer informer, IServiceProvider services, IOptions<GuestHealthOptions> options,
    TimeProvider time, ILogger<GuestHealthHost> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var reconciler = services.GetService<ReconcilerHost>();
        monitor.LivenessFailed += key => reconciler?.Queue.Add(key);
        try
        {
            await informer.Synced.WaitAsync(stoppingToken);
            using var candidates = new ProbeCandidates(informer, monitor);
            using var timer = new PeriodicTimer(options.Value.TickInterval, time);
            do
            {
                try
                {
                    // Only the records a tick can act on (issue 15, idle4: ProbeCandidates), kept from the informer's
                    // events: visiting every cached record four times a second was the idle daemon's largest cost with
                    // thousands of stopped VMs. With none, nothing is copied (rss3: no allocation at idle).
                    await monitor.TickAsync(candidates.Snapshot(), stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogTickFailed(ex.Message, ex);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(1116, LogLevel.Warning, "guest probe pass failed: {Message}")]
    private partial void LogTickFailed(string message, Exception ex);
}

/// <summary>
/// Before every start of a VM with probes: notes how long its console log already is (QEMU appends across restarts,
/// so this boot's lines start there) and marks GuestReady False until this boot's readiness probe succeeds.
/// </summary>
public sealed class GuestHealthStartStep(TimeProvider time, DriverRegistry? drivers = null) : IStartStep
{
    public string Name => "health";

    public int Order => 900;

    public Task<StartStepResult> PrepareAsync(StartContext context, CancellationToken cancellationToken)
    {
        var vm = context.Stored;
        if (vm.Spec.ReadinessProbe is null && vm.Spec.LivenessProbe is null && vm.Spec.StartupProbe is null)
        {
            return Task.FromResult(StartStepResult.Proceed());
        }

        var path = vm.Status.ConsoleLogPath is { Length: > 0 } stored ? stored
            : drivers is not null && drivers.TryGet(vm.Spec.Provider, out var driver) ? driver.ConsoleLogPath(vm) : null;
        var info = path is null ? null : new FileInfo(path);
        var offset = info is { Exists: true } && (info.Attributes & FileAttributes.ReparsePoint) == 0 ? info.Length : 0;
        var now = time.GetUtcNow();
        var readiness = vm.Spec.ReadinessProbe;
        var startup = vm.Spec.StartupProbe;
        return Task.FromResult(StartStepResult.Proceed(s =>
        {
            var conditions = readiness is null
                ? s.Conditions
                : Conditions.Set(s.Conditions, Conditions.GuestReady, ConditionStatus.False, GuestHealthMonitor.ReasonProbing,
                    $"waiting for the guest to boot; readiness probe {readiness.Describe()}", vm.Generation, now);
            conditions = startup is null
                ? conditions
                : Conditions.Set(conditions, GuestHealthMonitor.ConditionGuestStarted, ConditionStatus.False, GuestHealthMonitor.ReasonProbing,
                    $"waiting for the guest to boot; startup probe {startup.Describe()}", vm.Generation, now);
            return s with { ConsoleBootOffset = offset, Conditions = conditions };
        }));
    }

    public Task ReleaseAsync(MicroVm vm, CancellationToken cancellationToken) => Task.CompletedTask;
}

public static class GuestHealthServiceCollectionExtensions
{
    /// <summary>Adds the guest prober (readiness/liveness probes), its start step and options validation.</summary>
    public static IServiceCollection AddGuestHealth(this IServiceCollection services, Action<GuestHealthOptions>? configure = null)
    {
        services.AddValidatedOptions<GuestHealthOptions, GuestHealthOptionsValidator>(configure);
        services.TryAddSingleton(TimeProvider.System);
        // Factories, not implementation types: Composition/ServiceFactories says why.
        services.TryAddSingleton(_ => new LivenessSignals());
        services.TryAddSingleton<INetworkProbes>(sp => new SocketNetworkProbes(sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => new ProbeTargetPolicy(
            sp.GetRequiredService<IOptions<GuestHealthOptions>>(), sp.GetRequiredService<IOptions<ReconcilerOptions>>(), sp.GetService<IGuestAddressSource>()));
        services.TryAddSingleton(sp => new GuestHealthMonitor(
            sp.GetRequiredService<Store.IMicroVmStore>(), sp.GetRequiredService<INetworkProbes>(), sp.GetRequiredService<LivenessSignals>(),
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<IOptions<GuestHealthOptions>>(), sp.GetRequiredService<IOptions<ReconcilerOptions>>(),
            sp.LoggerFor<GuestHealthMonitor>(), sp.GetService<DriverRegistry>(), sp.GetService<ProbeTargetPolicy>()));
        services.TryAddSingleton(sp => new GuestHealthHost(
            sp.GetRequiredService<GuestHealthMonitor>(), sp.GetRequiredService<MicroVmInformer>(), sp, sp.GetRequiredService<IOptions<GuestHealthOptions>>(),
            sp.GetRequiredService<TimeProvider>(), sp.LoggerFor<GuestHealthHost>()));
        services.AddHostedService(sp => sp.GetRequiredService<GuestHealthHost>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IStartStep, GuestHealthStartStep>(
            sp => new GuestHealthStartStep(sp.GetRequiredService<TimeProvider>(), sp.GetService<DriverRegistry>())));
        return services;
    }
}

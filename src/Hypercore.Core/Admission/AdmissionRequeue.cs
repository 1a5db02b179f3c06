using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Hypercore.Composition;

namespace Hypercore.Admission;

/// <summary>
/// Queues the VMs waiting for room as soon as room may have freed up: a VM of this node was deleted, stopped or
/// failed. The periodic retry of <see cref="AdmissionStep"/> covers anything this misses (a capacity change).
/// </summary>
public sealed partial class AdmissionRequeue : IHostedService
{
    private readonly MicroVmInformer _informer;
    private readonly AdmissionStep _step;
    private readonly NodeCapacity _capacity;
    private readonly IServiceProvider _services;
    private readonly ILogger<AdmissionRequeue> _log;
    private IDisposable? _subscription;

    public AdmissionRequeue(MicroVmInformer informer, AdmissionStep step, NodeCapacity capacity, IServiceProvider services, ILogger<AdmissionRequeue> log)
    {
        _informer = informer;
        _step = step;
        _capacity = capacity;
        _services = services;
        _log = log;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _subscription = _informer.AddHandler(OnEvent);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _subscription?.Dispose();
        return Task.CompletedTask;
    }

    private void OnEvent(InformerEvent ev)
    {
        if (!_capacity.IsOnThisNode(ev.MicroVm) || !FreesRoom(ev))
        {
            return;
        }

        var waiting = _step.Waiting;
        if (waiting.Count == 0 || _services.GetService<ReconcilerHost>() is not { } host)
        {
            return;
        }

        LogRequeue(ev.MicroVm.Key, waiting.Count);
        foreach (var key in waiting)
        {
            host.Queue.Add(key);
        }
    }

    private static bool FreesRoom(InformerEvent ev) => ev.Type switch
    {
        InformerEventType.Deleted => true,
        InformerEventType.Modified => ev.Previous is { } before && before.Status.Phase != ev.MicroVm.Status.Phase &&
                                      ev.MicroVm.Status.Phase is Phase.Stopped or Phase.Failed,
        _ => false,
    };

    [LoggerMessage(1404, LogLevel.Debug, "{Key} freed room: trying the {Count} waiting VMs again")]
    private partial void LogRequeue(VmKey key, int count);
}

public static class AdmissionServiceCollectionExtensions
{
    /// <summary>
    /// Adds node capacity and admission: the start step (order 100), the re-queue on freed room, and
    /// <see cref="CapacityOptions"/> validation. Needs the reconciler's options for the node name.
    /// </summary>
    public static IServiceCollection AddAdmission(this IServiceCollection services, Action<CapacityOptions>? configure = null)
    {
        services.AddValidatedOptions<CapacityOptions, CapacityOptionsValidator>(configure);
        services.AddMicroVmInformer();
        services.TryAddSingleton<IHostResources>(new ProcHostResources());
        // Factories, not implementation types: Composition/ServiceFactories says why.
        services.TryAddSingleton(sp => new NodeCapacity(
            sp.GetRequiredService<IHostResources>(), sp.GetRequiredService<IOptions<CapacityOptions>>(), sp.GetRequiredService<IOptions<ReconcilerOptions>>()));
        services.TryAddSingleton(sp => new AdmissionStep(
            sp.GetRequiredService<NodeCapacity>(), sp.GetRequiredService<MicroVmInformer>(), sp.GetRequiredService<TimeProvider>(), sp.LoggerFor<AdmissionStep>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IStartStep, AdmissionStep>(sp => sp.GetRequiredService<AdmissionStep>()));
        if (!services.Any(d => d.ServiceType == typeof(AdmissionRequeue)))
        {
            services.AddSingleton(sp => new AdmissionRequeue(
                sp.GetRequiredService<MicroVmInformer>(), sp.GetRequiredService<AdmissionStep>(), sp.GetRequiredService<NodeCapacity>(), sp,
                sp.LoggerFor<AdmissionRequeue>()));
            services.AddHostedService(sp => sp.GetRequiredService<AdmissionRequeue>());
        }

        return services;
    }
}

using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Hypercore.Composition;

namespace Hypercore.Snapshots;

public static class SnapshotServiceCollectionExtensions
{
    /// <summary>
    /// Snapshots under <paramref name="directory"/> (the daemon: &lt;state-dir&gt;/snapshots): the store, the manager the
    /// API calls, and the start step that restores VMs with spec.restoreFrom. Needs a DriverRegistry.
    /// </summary>
    public static IServiceCollection AddSnapshots(this IServiceCollection services, string directory)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(new SnapshotStore(directory));
        // Factories, not implementation types: Composition/ServiceFactories says why.
        services.TryAddSingleton(sp => new SnapshotManager(
            sp.GetRequiredService<SnapshotStore>(), sp.GetRequiredService<Drivers.DriverRegistry>(), sp.GetRequiredService<TimeProvider>(),
            sp.LoggerFor<SnapshotManager>(), sp.GetService<Hypercore.Store.IMicroVmStore>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IStartStep, SnapshotRestoreStep>(sp => new SnapshotRestoreStep(
            sp.GetRequiredService<SnapshotStore>(), sp.GetRequiredService<Drivers.DriverRegistry>(), sp.LoggerFor<SnapshotRestoreStep>())));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Microsoft.Extensions.Hosting.IHostedService, SnapshotStartup>(
            sp => new SnapshotStartup(sp.GetRequiredService<SnapshotStore>(), sp.LoggerFor<SnapshotStartup>())));
        return services;
    }
}

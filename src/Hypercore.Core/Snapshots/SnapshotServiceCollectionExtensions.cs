using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

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
        services.TryAddSingleton<SnapshotManager>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IStartStep, SnapshotRestoreStep>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Microsoft.Extensions.Hosting.IHostedService, SnapshotStartup>());
        return services;
    }
}

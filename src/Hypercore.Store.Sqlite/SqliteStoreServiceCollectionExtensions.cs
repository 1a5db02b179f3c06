using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Hypercore.Composition;

namespace Hypercore.Store.Sqlite;

public static class SqliteStoreServiceCollectionExtensions
{
    /// <summary>
    /// Adds the SQLite store as the singleton <see cref="IMicroVmStore"/> (also resolvable as
    /// <see cref="SqliteMicroVmStore"/>), with its options validated at start.
    /// </summary>
    public static IServiceCollection AddSqliteStore(this IServiceCollection services, Action<SqliteStoreOptions>? configure = null)
    {
        services.AddValidatedOptions<SqliteStoreOptions, SqliteStoreOptionsValidator>(configure);
        // Factories, not implementation types: Hypercore.Composition.ServiceFactories says why.
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new SqliteMicroVmStore(
            sp.GetRequiredService<IOptions<SqliteStoreOptions>>(), sp.GetRequiredService<TimeProvider>(), sp.LoggerFor<SqliteMicroVmStore>()));
        services.AddSingleton<IMicroVmStore>(sp => sp.GetRequiredService<SqliteMicroVmStore>());
        services.TryAddSingleton<IResourceVersionCheck>(sp => sp.GetRequiredService<SqliteMicroVmStore>()); // issue 15: the reconciler's cached reads
        services.TryAddSingleton<IVersionListing>(sp => sp.GetRequiredService<SqliteMicroVmStore>()); // issue 15: the informer's relist reads what changed
        return services;
    }
}

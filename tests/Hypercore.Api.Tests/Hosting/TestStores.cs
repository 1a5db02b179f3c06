using Hypercore.Store;
using Hypercore.Store.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypercore.Api.Tests.Hosting;

/// <summary>The store the API tests run against: the real SQLite store, one database file per test in its temp directory.</summary>
public static class TestStores
{
    public static Task<(IMicroVmStore Store, IAsyncDisposable? Owner)> CreateAsync(string directory)
    {
        var services = new ServiceCollection()
            .AddSingleton(typeof(Microsoft.Extensions.Logging.ILogger<>), typeof(NullLogger<>))
            .AddSqliteStore(o =>
            {
                o.DatabasePath = Path.Combine(directory, "hypercore.db");
                o.NodeName = "test-node";
            })
            .BuildServiceProvider();
        return Task.FromResult<(IMicroVmStore, IAsyncDisposable?)>((services.GetRequiredService<IMicroVmStore>(), services));
    }
}

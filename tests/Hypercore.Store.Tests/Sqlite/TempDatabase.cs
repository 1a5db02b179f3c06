using Hypercore.Store.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>A private directory for one test's database file; deleted with everything in it on dispose.</summary>
internal sealed class TempDatabase : IDisposable
{
    public TempDatabase()
    {
        Directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "hypercore-store-tests", Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
        Path = System.IO.Path.Combine(Directory, "state", "hypercore.db");
    }

    public string Directory { get; }

    /// <summary>Inside a subdirectory that does not exist yet: the store must create it.</summary>
    public string Path { get; }

    public SqliteMicroVmStore Open(TimeProvider? time = null, Action<SqliteStoreOptions>? configure = null)
    {
        var options = new SqliteStoreOptions { DatabasePath = Path, NodeName = "test-node" };
        configure?.Invoke(options);
        return new SqliteMicroVmStore(Options.Create(options), time ?? TimeProvider.System, NullLogger<SqliteMicroVmStore>.Instance);
    }

    /// <summary>
    /// The services a daemon on this database starts from: logging (warnings and above), the system clock, and the SQLite
    /// store (<c>AddSqliteStore</c>, node "test-node"); a test adds the rest (informer, reconciler) and builds them.
    /// </summary>
    public ServiceCollection Services()
    {
        var services = new ServiceCollection();
        services.AddLogging(l => l.SetMinimumLevel(LogLevel.Warning));
        services.AddSingleton(TimeProvider.System);
        services.AddSqliteStore(o =>
        {
            o.DatabasePath = Path;
            o.NodeName = "test-node";
        });
        return services;
    }

    /// <summary>An open connection of its own to the database file, as another process would have (no pooling).</summary>
    public SqliteConnection OpenConnection()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    public void Dispose()
    {
        if (System.IO.Directory.Exists(Directory))
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }
}

using Hypercore.Store.Sqlite;
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

    public void Dispose()
    {
        if (System.IO.Directory.Exists(Directory))
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }
}

using Hypercore.Store.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// A fixture on one temporary database per test: the stores a test opens with <see cref="Open"/> are closed after it,
/// then the database's directory is removed.
/// </summary>
public abstract class TempDatabaseTest
{
    private readonly List<SqliteMicroVmStore> _stores = [];

    private protected TempDatabase Database { get; private set; } = null!;

    [SetUp]
    public void CreateDatabase() => Database = new TempDatabase();

    [TearDown]
    public async Task CloseStoresAsync()
    {
        try
        {
            foreach (var store in _stores)
            {
                await store.DisposeAsync();
            }
        }
        finally
        {
            _stores.Clear();
            Database.Dispose();
        }
    }

    /// <summary>Opens a store on <see cref="Database"/>, closed after the test unless the test closes it first.</summary>
    private protected SqliteMicroVmStore Open(TimeProvider? time = null, Action<SqliteStoreOptions>? configure = null)
    {
        var store = Database.Open(time, configure);
        _stores.Add(store);
        return store;
    }
}

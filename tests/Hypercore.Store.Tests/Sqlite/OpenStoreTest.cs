using Hypercore.Store.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>A fixture on one SQLite store in a temporary database, opened before each test and closed after it.</summary>
public abstract class OpenStoreTest
{
    private protected TempDatabase Database { get; private set; } = null!;

    private protected SqliteMicroVmStore Store { get; private set; } = null!;

    [SetUp]
    public void OpenStore()
    {
        Database = new TempDatabase();
        Store = Database.Open();
    }

    [TearDown]
    public async Task CloseStoreAsync()
    {
        await Store.DisposeAsync();
        Database.Dispose();
    }
}

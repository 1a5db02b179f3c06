using Hypercore.Store.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>A fixture on one SQLite store in a temporary database, opened before each test and closed after it.</summary>
public abstract class OpenStoreTest : TempDatabaseTest
{
    private protected SqliteMicroVmStore Store { get; private set; } = null!;

    [SetUp]
    public void OpenStore() => Store = Open(); // after the base class's SetUp, which made the database

    [TearDown]
    public async Task CloseStoreAsync() => await Store.DisposeAsync(); // before the base class's TearDown, which removes the database
}

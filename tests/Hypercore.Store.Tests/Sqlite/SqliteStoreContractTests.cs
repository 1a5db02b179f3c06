using Hypercore.Store.Sqlite;
using Hypercore.Store.Tests.Contract;

namespace Hypercore.Store.Tests.Sqlite;

[TestFixture]
public sealed class SqliteStoreContractTests : StoreContractTests
{
    private TempDatabase? _database;
    private SqliteMicroVmStore? _store;

    protected override Task<IMicroVmStore> CreateStoreAsync()
    {
        _database = new TempDatabase();
        _store = _database.Open();
        return Task.FromResult<IMicroVmStore>(_store);
    }

    protected override async Task<IMicroVmStore> ReopenAsync()
    {
        await _store!.DisposeAsync();
        _store = null;
        _store = _database!.Open();
        return _store;
    }

    [TearDown]
    public async Task TearDownStoreAsync()
    {
        try
        {
            if (_store is not null)
            {
                await _store.DisposeAsync();
            }
        }
        finally
        {
            _store = null;
            _database?.Dispose();
            _database = null;
        }
    }
}

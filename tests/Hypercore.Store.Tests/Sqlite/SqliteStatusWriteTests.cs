using Hypercore.MicroVms;
using Hypercore.Store.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// Issue 15, ninth pass: what a status write (the Running load's third durable write: claim + Provisioning, then Running)
/// costs the writer. It reads its row through the (namespace, id) index once (the version check) and then updates the
/// same row by rowid, instead of finding it through the index again; and it changes no indexed column, so it writes the
/// table and no index.
/// </summary>
[TestFixture]
public sealed class SqliteStatusWriteTests
{
    private TempDatabase _database = null!;

    [SetUp]
    public void SetUp() => _database = new TempDatabase();

    [TearDown]
    public void TearDown() => _database.Dispose();

    private static IEnumerable<TestCaseData> WritesAfterTheRead()
    {
        yield return new TestCaseData(SqliteMicroVmStore.WriterCommands.UpdateStatusSql).SetName("UpdateStatus");
        yield return new TestCaseData(SqliteMicroVmStore.WriterCommands.ClaimWithStatusSql).SetName("ClaimWithStatus");
        yield return new TestCaseData(SqliteMicroVmStore.WriterCommands.UpdateSpecSql).SetName("UpdateSpec");
        yield return new TestCaseData(SqliteMicroVmStore.WriterCommands.MarkForDeletionSql).SetName("MarkForDeletion");
        yield return new TestCaseData(SqliteMicroVmStore.WriterCommands.DeleteSql).SetName("Delete");
    }

    [TestCaseSource(nameof(WritesAfterTheRead))]
    public async Task WriteAfterSelectForWrite_FindsItsRowByRowid_NotThroughTheKeyIndexAgain(string sql)
    {
        await using (var store = _database.Open())
        {
            await store.CreateAsync(new MicroVmSpec { Id = "vm", Namespace = "default", Kernel = new KernelSpec { Image = "/k" } });
        }

        using var connection = _database.OpenConnection();
        QueryPlan(connection, sql).Should().Be("SEARCH microvms USING INTEGER PRIMARY KEY (rowid=?)");
        QueryPlan(connection, SqliteMicroVmStore.WriterCommands.SelectByKeySql).Should().Contain("USING INDEX sqlite_autoindex_microvms_", "the read before it goes by key, once");
    }

    [Test]
    public async Task StatusWrite_OpensNoIndexForWriting()
    {
        await using (var store = _database.Open())
        {
            await store.CreateAsync(new MicroVmSpec { Id = "vm", Namespace = "default", Kernel = new KernelSpec { Image = "/k" } });
        }

        using var connection = _database.OpenConnection();
        foreach (var sql in (string[])[SqliteMicroVmStore.WriterCommands.UpdateStatusSql, SqliteMicroVmStore.WriterCommands.ClaimWithStatusSql])
        {
            using var command = connection.CreateCommand();
            command.CommandText = "EXPLAIN " + sql;
            var opened = new List<long>();
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                if (reader.GetString(1) is "OpenWrite" or "OpenRead")
                {
                    opened.Add(reader.GetInt64(3)); // p2: the root page of the b-tree opened
                }
            }

            using var root = connection.CreateCommand();
            root.CommandText = "SELECT rootpage FROM sqlite_schema WHERE name = 'microvms';";
            opened.Should().Equal([(long)root.ExecuteScalar()!], $"{sql} touches the table's b-tree and nothing else");
        }
    }

    /// <summary>Stores a status with the writes that use these statements and reads everything back, across a reopen.</summary>
    [Test]
    public async Task WritesByRowid_ChangeOnlyTheirOwnRow()
    {
        var running = new MicroVmStatus { Phase = Phase.Running, ObservedGeneration = 1, Node = "test-node", Pid = 7 };
        await using (var store = _database.Open())
        {
            var vms = new List<MicroVm>();
            for (var i = 0; i < 5; i++)
            {
                vms.Add(await store.CreateAsync(new MicroVmSpec { Id = $"vm-{i}", Namespace = "default", Kernel = new KernelSpec { Image = "/k" } }));
            }

            var claimed = await store.ClaimWithStatusAsync(vms[2].Key, running with { Phase = Phase.Provisioning }, vms[2].ResourceVersion);
            var updated = await store.UpdateStatusAsync(claimed.Key, running, claimed.ResourceVersion);
            updated.Status.Should().Be(running);
            updated.Claimed.Should().BeTrue();
            var respec = await store.UpdateSpecAsync(vms[3].Key, vms[3].Spec with { Labels = new Dictionary<string, string> { ["a"] = "b" } }, vms[3].ResourceVersion);
            respec.Generation.Should().Be(2);
            await store.MarkForDeletionAsync(vms[4].Key);
            await store.RemoveAsync(vms[0].Key);
        }

        await using var reopened = _database.Open();
        var all = await reopened.ListAsync();
        all.Select(v => v.Key.Id).Should().Equal("vm-1", "vm-2", "vm-3", "vm-4");
        all[0].Status.Should().Be(MicroVmStatus.Initial);
        all[0].Claimed.Should().BeFalse();
        all[1].Status.Should().Be(running);
        all[1].Claimed.Should().BeTrue();
        all[2].Spec.Labels.Should().ContainKey("a");
        all[2].Status.Should().Be(MicroVmStatus.Initial);
        all[3].IsDeleting.Should().BeTrue();
        all[3].Spec.Labels.Should().BeEmpty();
    }

    private static string QueryPlan(Microsoft.Data.Sqlite.SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "EXPLAIN QUERY PLAN " + sql;
        using var reader = command.ExecuteReader();
        var details = new List<string>();
        while (reader.Read())
        {
            details.Add(reader.GetString(3));
        }

        return string.Join(" | ", details);
    }
}

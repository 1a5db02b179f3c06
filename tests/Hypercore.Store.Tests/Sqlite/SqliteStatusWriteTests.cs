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

    /// <summary>
    /// Issue 15, thirteenth pass: the reconciler's status writes follow the Create and each other, so the writer has the
    /// record, its version and its rowid listed, and writes the status with one statement by rowid (no read through the
    /// key index first). What the callers and watchers get is the same record.
    /// </summary>
    [Test]
    public async Task StatusWritesAfterACreate_GoToTheListedRow_WithNoReadFirst()
    {
        var provisioning = new MicroVmStatus { Phase = Phase.Provisioning, ObservedGeneration = 1, Node = "test-node" };
        var running = provisioning with { Phase = Phase.Running, Pid = 7 };
        await using var store = _database.Open();
        var created = await store.CreateAsync(new MicroVmSpec { Id = "vm", Namespace = "default", Kernel = new KernelSpec { Image = "/k" } });

        var claimed = await store.ClaimWithStatusAsync(created.Key, provisioning, created.ResourceVersion);
        var updated = await store.UpdateStatusAsync(created.Key, running, claimed.ResourceVersion);

        store.StatusWritesWithoutRead.Should().Be(2);
        using (var connection = _database.OpenConnection())
        {
            QueryPlan(connection, SqliteMicroVmStore.WriterCommands.SelectWrittenSql).Should().Be("SEARCH microvms USING INTEGER PRIMARY KEY (rowid=?)");
        }

        claimed.Should().Be(created with { Status = provisioning, Claimed = true, ResourceVersion = claimed.ResourceVersion });
        updated.Should().Be(created with { Status = running, Claimed = true, ResourceVersion = updated.ResourceVersion });
        long.Parse(updated.ResourceVersion).Should().Be(long.Parse(claimed.ResourceVersion) + 1);
        (await store.GetAsync(created.Key)).Should().Be(updated);

        // A stale version still conflicts, and writes nothing.
        var stale = () => store.UpdateStatusAsync(created.Key, provisioning, claimed.ResourceVersion);
        await stale.Should().ThrowAsync<ConflictException>();
        store.StatusWritesWithoutRead.Should().Be(2);
        (await store.GetAsync(created.Key)).Should().Be(updated);
    }

    /// <summary>The listed record is only trusted while the row is still it: a spec changed outside the store at the same version is read as it is.</summary>
    [Test]
    public async Task StatusWrite_AfterTheSpecWasEditedOutsideAtTheSameVersion_ReturnsTheRowsSpec()
    {
        await using var store = _database.Open();
        var created = await store.CreateAsync(new MicroVmSpec { Id = "vm", Namespace = "default", Kernel = new KernelSpec { Image = "/k" } });
        using (var connection = _database.OpenConnection())
        using (var command = connection.CreateCommand())
        {
            command.CommandText = """UPDATE microvms SET spec = '{"id":"vm","namespace":"default","kernel":{"image":"/edited"}}' WHERE id = 'vm';""";
            command.ExecuteNonQuery().Should().Be(1);
        }

        var running = new MicroVmStatus { Phase = Phase.Running, ObservedGeneration = 1, Node = "test-node" };
        var updated = await store.UpdateStatusAsync(created.Key, running, created.ResourceVersion);

        updated.Spec.Kernel.Image.Should().Be("/edited");
        updated.Status.Should().Be(running);
        (await store.GetAsync(created.Key)).Should().Be(updated);
    }

    /// <summary>A listed rowid that now holds another key (the row renamed outside the store, or rowids renumbered by a VACUUM) is not written.</summary>
    [Test]
    public async Task StatusWrite_WhenTheListedRowidHoldsAnotherKey_WritesNothingThere()
    {
        await using var store = _database.Open();
        var created = await store.CreateAsync(new MicroVmSpec { Id = "vm", Namespace = "default", Kernel = new KernelSpec { Image = "/k" } });
        using (var connection = _database.OpenConnection())
        using (var command = connection.CreateCommand())
        {
            command.CommandText = """UPDATE microvms SET id = 'other', spec = '{"id":"other","namespace":"default","kernel":{"image":"/k"}}' WHERE id = 'vm';""";
            command.ExecuteNonQuery().Should().Be(1);
        }

        var write = () => store.UpdateStatusAsync(created.Key, new MicroVmStatus { Phase = Phase.Running }, created.ResourceVersion);

        await write.Should().ThrowAsync<NotFoundException>();
        var other = await store.GetAsync(new VmKey("default", "other"));
        other!.Status.Should().Be(MicroVmStatus.Initial);
        other.ResourceVersion.Should().Be(created.ResourceVersion);
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

using Hypercore.MicroVms;
using Microsoft.Data.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// Issue 15: the listing of keys, uids and versions behind the informer's relist, which reads the full record only of
/// the rows its caller wants, and lists and reads in one snapshot.
/// </summary>
[TestFixture]
public sealed class SqliteVersionListingTests : OpenStoreTest
{
    private static MicroVmSpec Spec(string id, string ns = "default") =>
        new() { Namespace = ns, Id = id, Kernel = new KernelSpec { Image = "/images/vmlinuz" } };

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    [Test]
    public async Task ListWanted_ListsEveryRowInKeyOrder_AndReturnsOnlyTheWantedRecords()
    {
        await Store.CreateAsync(Spec("b"));
        var wantedOne = await Store.CreateAsync(Spec("a", "team"));
        await Store.CreateAsync(Spec("a"));
        var listed = new List<RecordVersion>();

        var read = await Store.ListWantedAsync(v =>
        {
            listed.Add(v.ToRecordVersion());
            return v.Is(wantedOne.Key);
        });

        var all = await Store.ListAsync();
        listed.Should().Equal(all.Select(v => new RecordVersion(v.Key, v.Uid, v.ResourceVersion)), "the same rows, in the same order, as a full list");
        read.Should().ContainSingle().Which.Should().BeEquivalentTo(wantedOne);
    }

    [Test]
    public async Task ListWanted_RowsNotWanted_AreNotParsed()
    {
        await Store.CreateAsync(Spec("a"));
        var broken = await Store.CreateAsync(Spec("broken"));
        using (var connection = Database.OpenConnection())
        {
            Execute(connection, "UPDATE microvms SET spec = 'not json' WHERE id = 'broken';"); // the version is left as it was
        }

        var listed = new List<RecordVersion>();
        var read = await Store.ListWantedAsync(v =>
        {
            listed.Add(v.ToRecordVersion());
            return false;
        });

        read.Should().BeEmpty();
        listed.Select(v => v.Key.Id).Should().Equal("a", "broken");
        await FluentActions.Awaiting(() => Store.ListAsync()).Should().ThrowAsync<StoreException>("a full list parses every row");
        await FluentActions.Awaiting(() => Store.ListWantedAsync(v => v.Is(broken.Key))).Should()
            .ThrowAsync<StoreException>().WithMessage("*not valid JSON*");
    }

    [Test]
    public async Task ListWanted_WritesDuringTheListing_AreNotSeenByItsReads()
    {
        await Store.CreateAsync(Spec("a"));
        var b = await Store.CreateAsync(Spec("b"));
        var c = await Store.CreateAsync(Spec("c"));
        var listed = new List<RecordVersion>();

        // While the listing runs (at its first row), another writer changes b and removes c, both listed after that.
        var read = await Store.ListWantedAsync(v =>
        {
            if (listed.Count == 0)
            {
                using var connection = Database.OpenConnection();
                Execute(connection, """
                    UPDATE meta SET value = value + 1 WHERE key = 'resource_version';
                    UPDATE microvms SET status = '{"phase":"Failed"}', resource_version = (SELECT value FROM meta WHERE key = 'resource_version') WHERE id = 'b';
                    DELETE FROM microvms WHERE id = 'c';
                    """);
            }

            listed.Add(v.ToRecordVersion());
            return true;
        });

        listed.Select(v => (v.Key.Id, v.ResourceVersion)).Should().Equal(("a", listed[0].ResourceVersion), ("b", b.ResourceVersion), ("c", c.ResourceVersion));
        read.Select(v => (v.Key.Id, v.ResourceVersion)).Should().Equal(listed.Select(v => (v.Key.Id, v.ResourceVersion)),
            "the records are read from the listing's snapshot, not after the other writer's commit");
        read[1].Status.Phase.Should().Be(b.Status.Phase);

        var after = await Store.ListWantedAsync(_ => true);
        after.Select(v => v.Key.Id).Should().Equal("a", "b");
        after[1].Status.Phase.Should().Be(Phase.Failed);
        (await Store.GetAsync(b.Key))!.Status.Phase.Should().Be(Phase.Failed, "the kept point-read command works outside the transaction again");
    }
}

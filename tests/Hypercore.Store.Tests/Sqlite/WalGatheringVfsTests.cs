using Hypercore.MicroVms;
using Hypercore.Store.Sqlite;
using Microsoft.Data.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// Issue 15, twenty-first pass: the store's writer writes a commit's WAL frames through <see cref="WalGatheringVfs"/>,
/// one write(2) per up to 128 KiB instead of two per frame. What must hold: the same bytes reach the file in the same
/// order, every commit is in the file before SQLite publishes it (with or without a sync per commit), and SQLite's own
/// paths that do not simply append (a transaction that spills pages and then rewrites them, a WAL that starts over, a
/// commit larger than the gather buffer) give the same database.
/// </summary>
[TestFixture]
public sealed class WalGatheringVfsTests
{
    private TempDatabase _database = null!;

    [SetUp]
    public void SetUp()
    {
        _database = new TempDatabase();
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(_database.Path)!);
    }

    [TearDown]
    public void TearDown() => _database.Dispose();

    private static MicroVmSpec Spec(string id) =>
        new() { Id = id, Namespace = "bench", State = DesiredState.Stopped, Kernel = new KernelSpec { Image = "/var/lib/hypercore/images/vmlinuz" } };

    private SqliteConnection OpenGathering(string synchronous)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = WalGatheringVfs.UriFor(_database.Path), Pooling = false }.ToString());
        connection.Open();
        Execute(connection, $"PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};");
        return connection;
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    private static void InsertRows(SqliteConnection connection, int from, int count, int bytes)
    {
        using var transaction = connection.BeginTransaction();
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO t (id, body) VALUES ($id, $body);";
        var id = command.Parameters.Add("$id", SqliteType.Integer);
        var body = command.Parameters.Add("$body", SqliteType.Blob);
        for (var i = from; i < from + count; i++)
        {
            id.Value = i;
            body.Value = Body(i, bytes);
            command.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    private static byte[] Body(int i, int bytes)
    {
        var body = new byte[bytes];
        new Random(i).NextBytes(body);
        return body;
    }

    /// <summary>Every row's body as written, read through a connection of SQLite's default VFS (another reader).</summary>
    private void ExpectRows(int count, int bytes)
    {
        using var reader = _database.OpenConnection();
        Scalar(reader, "PRAGMA integrity_check;").Should().Be("ok");
        using var command = reader.CreateCommand();
        command.CommandText = "SELECT id, body FROM t ORDER BY id;";
        using var rows = command.ExecuteReader();
        var seen = 0;
        while (rows.Read())
        {
            rows.GetInt32(0).Should().Be(seen);
            ((byte[])rows.GetValue(1)).Should().Equal(Body(seen, bytes), "row {0}'s body", seen);
            seen++;
        }

        seen.Should().Be(count);
    }

    [Test]
    public async Task StoreCommits_WriteTheWalInOneCallPerCommit_NotTwoPerFrame()
    {
        await using var store = _database.Open();
        await store.CreateAsync(Spec("warm-up"));
        var calls = WalGatheringVfs.WriteCalls;
        var writes = WalGatheringVfs.GatheredWrites;

        for (var i = 0; i < 20; i++)
        {
            await Task.WhenAll(Enumerable.Range(0, 16).Select(j => store.CreateAsync(Spec($"vm-{i}-{j}"))));
        }

        var sqliteWrites = WalGatheringVfs.GatheredWrites - writes;
        var fileWrites = WalGatheringVfs.WriteCalls - calls;
        sqliteWrites.Should().BeGreaterThanOrEqualTo(40, "SQLite wrote at least a frame (header + page) per commit");
        fileWrites.Should().BeLessThanOrEqualTo(20 * 16, "at most one write(2) per commit (each commit here is far below 128 KiB)");
        fileWrites.Should().BeLessThan(sqliteWrites / 2, "the frames' headers and pages went out together");
        (await store.ListAsync()).Should().HaveCount(1 + 20 * 16);
    }

    [Test]
    public void WithoutASyncPerCommit_ACommitIsInTheFileBeforeAnotherConnectionSeesIt()
    {
        // synchronous = NORMAL: SQLite never syncs (nor touches) the WAL between writing a commit's frames and
        // publishing it in the wal-index; the main file's shared-memory calls write the frames out instead (the
        // barrier inside the publication, the write lock's release after it). Checked: without both, this fails (a
        // disk I/O error in the reader). The barrier's share alone (a reader that reads between the publication and
        // the release, microseconds) is not timed here.
        using var writer = OpenGathering("NORMAL");
        Execute(writer, "CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL);");
        using var reader = _database.OpenConnection();
        for (var round = 0; round < 10; round++)
        {
            InsertRows(writer, round * 30, 30, 700);
            Convert.ToInt64(Scalar(reader, "SELECT count(*) FROM t;")).Should().Be((round + 1) * 30);
            Convert.ToInt64(Scalar(reader, "SELECT sum(length(body)) FROM t;")).Should().Be((round + 1) * 30 * 700L);
        }

        ExpectRows(300, 700);
    }

    [Test]
    public void ACommitLargerThanTheBuffer_AndOneThatSpillsAndRewritesItsPages_GiveTheSameDatabase()
    {
        using (var writer = OpenGathering("FULL"))
        {
            Execute(writer, "CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL);");
            InsertRows(writer, 0, 1_500, 1_000); // ~1.8 MB of frames in one commit: more than MaxGather

            // A page cache of 20 pages: the transaction spills frames into the WAL before its commit, then rewrites
            // some of them in place (writes that do not continue the previous one).
            Execute(writer, "PRAGMA cache_size = 20;");
            using (var transaction = writer.BeginTransaction())
            {
                using var update = writer.CreateCommand();
                update.CommandText = "UPDATE t SET body = zeroblob(1000) WHERE id % 7 = 3; UPDATE t SET body = zeroblob(1000) WHERE id % 7 = 3;";
                update.ExecuteNonQuery();
                using var restore = writer.CreateCommand();
                restore.CommandText = "UPDATE t SET body = $body WHERE id = $id;";
                var id = restore.Parameters.Add("$id", SqliteType.Integer);
                var body = restore.Parameters.Add("$body", SqliteType.Blob);
                for (var i = 3; i < 1_500; i += 7)
                {
                    id.Value = i;
                    body.Value = Body(i, 1_000);
                    restore.ExecuteNonQuery();
                }

                transaction.Commit();
            }

            InsertRows(writer, 1_500, 500, 1_000);
            Scalar(writer, "PRAGMA wal_checkpoint(RESTART);"); // the WAL starts over at its beginning
            InsertRows(writer, 2_000, 100, 1_000);
        }

        ExpectRows(2_100, 1_000);
    }

    [Test]
    public async Task APathWithUriDelimiters_IsOpenedAsThatExactFile()
    {
        var directory = Path.Combine(_database.Directory, "odd ?#%&=;dir é");
        var path = Path.Combine(directory, "hypercore.db");
        var options = new SqliteStoreOptions { DatabasePath = path, NodeName = "test-node" };
        await using (var store = new SqliteMicroVmStore(Microsoft.Extensions.Options.Options.Create(options), TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<SqliteMicroVmStore>.Instance))
        {
            await store.CreateAsync(Spec("vm-1"));
            store.DatabasePath.Should().Be(path);
        }

        File.Exists(path).Should().BeTrue();
        System.IO.Directory.GetFileSystemEntries(_database.Directory).Where(e => e != Path.GetDirectoryName(_database.Path))
            .Should().Equal([directory], "nothing was created under another name");
        System.IO.Directory.GetFileSystemEntries(Path.GetDirectoryName(_database.Path)!).Should().BeEmpty();
        WalGatheringVfs.UriFor("/a b/c?d#e%f").Should().Be("file:/a%20b/c%3Fd%23e%25f?vfs=" + WalGatheringVfs.Name);
    }

    [Test]
    public async Task TheSameCreates_GiveTheSameRows_WithAndWithoutGathering()
    {
        async Task<List<string>> RowsAsync(bool gather)
        {
            using var database = new TempDatabase();
            var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero));
            await using (var store = database.Open(time, o => o.GatherWalWrites = gather))
            {
                for (var i = 0; i < 10; i++)
                {
                    var created = await Task.WhenAll(Enumerable.Range(0, 8).Select(j => store.CreateAsync(Spec($"vm-{i}-{j}"))));
                    await store.UpdateStatusAsync(created[0].Key, new MicroVmStatus { Phase = Phase.Stopped, ObservedGeneration = 1, Node = "test-node" }, created[0].ResourceVersion);
                }
            }

            using var connection = database.OpenConnection();
            Scalar(connection, "PRAGMA integrity_check;").Should().Be("ok");
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT namespace, id, spec, status, generation FROM microvms ORDER BY id;";
            using var rows = command.ExecuteReader();
            var all = new List<string>();
            while (rows.Read())
            {
                all.Add($"{rows.GetString(0)}/{rows.GetString(1)} {rows.GetString(2)} {rows.GetString(3)} {rows.GetInt64(4)}");
            }

            return all;
        }

        var gathered = await RowsAsync(gather: true);
        var plain = await RowsAsync(gather: false);
        gathered.Should().HaveCount(80).And.Equal(plain);
    }
}

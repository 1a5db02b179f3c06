using Hypercore.MicroVms;
using Hypercore.Store.Sqlite;
using Microsoft.Data.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// The WAL is copied into the database file by a background checkpointer, not inside the writer's commits, and stays
/// bounded under a steady stream of writes (issue 15, seventh pass). Thresholds are made small so that a few thousand
/// writes cross them many times. The crash side is in <see cref="SqliteCrashTests"/>.
/// </summary>
[TestFixture]
public sealed class SqliteCheckpointTests
{
    private const int PageSize = 4096; // SQLite's default, which the store keeps

    private TempDatabase _database = null!;
    private readonly List<SqliteMicroVmStore> _stores = [];

    [SetUp]
    public void SetUp() => _database = new TempDatabase();

    [TearDown]
    public async Task TearDownAsync()
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
            _database.Dispose();
        }
    }

    private SqliteMicroVmStore Open(int backgroundFrames, int writerFrames, TimeSpan? busyTimeout = null)
    {
        var store = _database.Open(configure: o =>
        {
            o.CheckpointBackgroundFrames = backgroundFrames;
            o.CheckpointWriterFrames = writerFrames;
            o.BusyTimeout = busyTimeout ?? o.BusyTimeout;
        });
        _stores.Add(store);
        return store;
    }

    private static MicroVmSpec Spec(string id) => new() { Id = id, Kernel = new KernelSpec { Image = "/images/vmlinuz" } };

    /// <summary>Creates <paramref name="count"/> records from <paramref name="writers"/> concurrent writers, each also setting its record's status.</summary>
    private static async Task WriteAsync(SqliteMicroVmStore store, int count, int writers, string prefix = "vm")
    {
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, writers).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var created = await store.CreateAsync(Spec($"{prefix}-{i:D5}"));
                await store.UpdateStatusAsync(created.Key, new MicroVmStatus { Phase = Phase.Running, Pid = i }, created.ResourceVersion);
            }
        })));
    }

    private string WalPath => _database.Path + "-wal";

    /// <summary>The most frames the WAL file ever held (SQLite writes it again from the start rather than shrinking it).</summary>
    private long WalFrames => File.Exists(WalPath) ? (new FileInfo(WalPath).Length - 32) / (24 + PageSize) : 0;

    private SqliteConnection RawConnection()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = _database.Path, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Writes_PastTheBackgroundThreshold_AreCopiedIntoTheDatabaseOffTheWriter(CancellationToken cancellationToken)
    {
        var store = Open(backgroundFrames: 16, writerFrames: 1_000_000);
        var fileBefore = new FileInfo(_database.Path).Length;

        await WriteAsync(store, 600, writers: 8);
        while (store.BackgroundCheckpoints == 0)
        {
            await Task.Delay(10, cancellationToken);
        }

        store.WriterCheckpoints.Should().Be(0, "below its own threshold the writer never checkpoints");
        new FileInfo(_database.Path).Length.Should().BeGreaterThan(fileBefore, "the checkpointer copied pages into the database file while the store is open");
        (await store.ListAsync("default", cancellationToken)).Should().HaveCount(600);
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task SteadyWrites_KeepTheWalBounded()
    {
        const int writerFrames = 128;
        var store = Open(backgroundFrames: 16, writerFrames);

        await WriteAsync(store, 3000, writers: 32);

        // Without a checkpoint that lets the WAL start over, 6,000 writes leave thousands of frames; SQLite's own
        // automatic checkpoint (1,000 frames) let it reach more than 1,000.
        WalFrames.Should().BeLessThanOrEqualTo(4 * writerFrames, "the writer checkpoints at its threshold and the WAL starts over");
        store.BackgroundCheckpoints.Should().BePositive();
        store.WriterCheckpoints.Should().BePositive();
        (await store.ListAsync("default")).Should().HaveCount(3000);
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task ReaderHoldingASnapshot_TheWriterWaitsForIt_AndTheWalStaysBounded()
    {
        const int writerFrames = 32;
        var store = Open(backgroundFrames: 16, writerFrames, busyTimeout: TimeSpan.FromSeconds(30));
        await store.CreateAsync(Spec("first"));
        var reader = RawConnection();
        var snapshot = reader.BeginTransaction(deferred: true);
        using (var read = reader.CreateCommand())
        {
            read.CommandText = "SELECT count(*) FROM microvms;";
            read.ExecuteScalar().Should().Be(1L); // the read transaction holds this snapshot from here on
        }

        // 8,000 writes, ~1,000 frames and more without a checkpoint: all of them while the snapshot is held, unless the
        // writer waits for the reader.
        var writes = WriteAsync(store, 4000, writers: 32);
        await Task.WhenAny(writes, Task.Delay(1500));
        var framesWhilePinned = WalFrames;
        snapshot.Dispose();
        reader.Dispose();
        await writes;

        // PASSIVE checkpoints cannot copy past the reader's snapshot; past 4 x the threshold the writer waits for the
        // reader (RESTART) instead of letting the WAL grow.
        framesWhilePinned.Should().BeLessThanOrEqualTo(4 * writerFrames + 128, "one commit past the bound at most");
        WalFrames.Should().BeLessThanOrEqualTo(4 * writerFrames + 128);
        (await store.ListAsync("default")).Should().HaveCount(4001);
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Dispose_CheckpointsEverythingAndRemovesTheWal()
    {
        var store = Open(backgroundFrames: 16, writerFrames: 64);
        await WriteAsync(store, 500, writers: 8);
        store.BackgroundCheckpoints.Should().BePositive();

        await store.DisposeAsync();
        _stores.Clear();

        File.Exists(WalPath).Should().BeFalse("the writer's connection, closed last, checkpoints everything and removes the WAL");
        using var connection = RawConnection();
        using var check = connection.CreateCommand();
        check.CommandText = "PRAGMA integrity_check;";
        check.ExecuteScalar().Should().Be("ok");
        check.CommandText = "SELECT count(*) FROM microvms;";
        check.ExecuteScalar().Should().Be(500L);
    }
}

using System.Diagnostics;
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
public sealed class SqliteCheckpointTests : TempDatabaseTest
{
    private const int PageSize = 4096; // SQLite's default, which the store keeps

    private SqliteMicroVmStore Open(int backgroundFrames, int writerFrames, TimeSpan? busyTimeout = null, TimeSpan? idleDelay = null) =>
        Open(configure: o =>
        {
            o.CheckpointBackgroundFrames = backgroundFrames;
            o.CheckpointWriterFrames = writerFrames;
            o.BusyTimeout = busyTimeout ?? o.BusyTimeout;
            o.CheckpointIdleDelay = idleDelay ?? o.CheckpointIdleDelay;
        });

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

    private string WalPath => Database.Path + "-wal";

    /// <summary>The most frames the WAL file ever held (SQLite writes it again from the start rather than shrinking it).</summary>
    private long WalFrames => File.Exists(WalPath) ? (new FileInfo(WalPath).Length - 32) / (24 + PageSize) : 0;

    [Test]
    [CancelAfter(60_000)]
    public async Task Writes_PastTheBackgroundThreshold_AreCopiedIntoTheDatabaseOffTheWriter(CancellationToken cancellationToken)
    {
        var store = Open(backgroundFrames: 16, writerFrames: 1_000_000);
        var fileBefore = new FileInfo(Database.Path).Length;

        await WriteAsync(store, 600, writers: 8);
        while (store.BackgroundCheckpoints == 0)
        {
            await Task.Delay(10, cancellationToken);
        }

        store.WriterCheckpoints.Should().Be(0, "below its own threshold the writer never checkpoints");
        new FileInfo(Database.Path).Length.Should().BeGreaterThan(fileBefore, "the checkpointer copied pages into the database file while the store is open");
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
        WalFrames.Should().BeLessThanOrEqualTo(4 * writerFrames, "the WAL is checkpointed at the thresholds (in the background or on the writer) and starts over");
        store.BackgroundCheckpoints.Should().BePositive();
        // Not asserted here: that the writer itself checkpointed. By design a background pass that reached the WAL's end
        // lets the next transaction start it over with no checkpoint on the writer, and how often that happens depends on
        // the commits' timing (in the eleventh pass, with the writer's release order changed, it failed in 2 of ~6 full runs).
        // The writer's own checkpoint is asserted where it is certain: ReaderHoldingASnapshot_TheWriterWaitsForIt (RESTART).
        (await store.ListAsync("default")).Should().HaveCount(3000);
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task ReaderHoldingASnapshot_TheWriterWaitsForIt_AndTheWalStaysBounded()
    {
        const int writerFrames = 32;
        var store = Open(backgroundFrames: 16, writerFrames, busyTimeout: TimeSpan.FromSeconds(30));
        await store.CreateAsync(Spec("first"));
        var reader = Database.OpenConnection();
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
        store.WriterCheckpoints.Should().BePositive("past 4 x the threshold the writer ran the RESTART itself, waiting for the reader");
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

        File.Exists(WalPath).Should().BeFalse("the writer's connection, closed last, checkpoints everything and removes the WAL");
        using var connection = Database.OpenConnection();
        using var check = connection.CreateCommand();
        check.CommandText = "PRAGMA integrity_check;";
        check.ExecuteScalar().Should().Be("ok");
        check.CommandText = "SELECT count(*) FROM microvms;";
        check.ExecuteScalar().Should().Be(500L);
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task NearTheWritersPoint_TheBackgroundCopiesAlmostEverything_TheWriterOnlyTheLastFrames()
    {
        // The writer lets the WAL start over from 1,200 frames when the background left at most 100 (a quarter of its
        // threshold), at 2,000 whatever is left. Before, it copied what the background left whenever it reached its
        // point: anything up to the background's threshold.
        var store = Open(backgroundFrames: 400, writerFrames: 1200);

        await WriteAsync(store, 6000, writers: 8);

        // Some restarts cost the writer nothing: a background pass that reached the WAL's end lets it start over.
        store.WriterCopiedFrames.Should().BeLessThanOrEqualTo(
            100 * Math.Max(1, store.WriterCheckpoints), "background passes run back to back near the point, the writer copies what the last one left");
        WalFrames.Should().BeLessThanOrEqualTo(2000 + 200, "the WAL started over");
        (await store.ListAsync("default")).Should().HaveCount(6000);
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task AtTheHardPoint_TheWriterWaitsForASlowBackgroundPass_AndTheWalStartsOver()
    {
        // Each background pass as slow as a database fsync on a busy disk (a CI run: the WAL reached 2,282 frames in the
        // test above). SQLite runs one checkpoint at a time: without the wait, the writer's own checkpoint at the hard
        // point was refused as busy and the WAL grew by every commit made while the pass ran.
        var store = Open(backgroundFrames: 400, writerFrames: 1200);
        await WriteAsync(store, 1, writers: 1, prefix: "first"); // the writer makes its checkpointer before its first commit
        var checkpointer = store.Checkpointer!;
        // A CI run (s39), with other test projects on both cores, took longer than the writer's 2 s bound from the hard
        // point to the held pass's end: the writer then rightly went on, and this test saw no wait. The bound is not what
        // is tested here; the wait is.
        checkpointer.HardPointWait = TimeSpan.FromSeconds(60);
        var first = 0;
        checkpointer.BeforeBackgroundPass = () =>
        {
            // The first pass is held until the writer has reached the hard point (writer point + 2 x background point,
            // 2,000 frames), so the writer finds it running (with only the 250 ms below, a slow run may commit too
            // slowly to get there while any pass runs).
            if (Interlocked.Exchange(ref first, 1) == 0)
            {
                var held = Stopwatch.StartNew();
                while (WalFrames < checkpointer.HardFrames && held.Elapsed < TimeSpan.FromSeconds(60))
                {
                    Thread.Sleep(5);
                }
            }

            Thread.Sleep(250);
        };

        // The file's size after the run is not enough: a restart after a longer WAL cuts it back to the hard point
        // (journal_size_limit). So its size is sampled while the writes run.
        var most = 0L;
        using var done = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                most = Math.Max(most, WalFrames);
                await Task.Delay(2);
            }
        });
        await WriteAsync(store, 6000, writers: 8);
        await done.CancelAsync();
        await sampler;

        checkpointer.HardPointWaits.Should().BePositive("the writer reached the hard point while a pass ran");
        most.Should().BeLessThanOrEqualTo(2000 + 200, "the writer waited for the pass, checkpointed, and the WAL started over");
        (await store.ListAsync("default")).Should().HaveCount(6001);
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task AfterAPauseInTheWrites_TheWalFileIsEmptied(CancellationToken cancellationToken)
    {
        var store = Open(backgroundFrames: 16, writerFrames: 128, idleDelay: TimeSpan.FromMilliseconds(200));
        await WriteAsync(store, 1000, writers: 8);
        WalFrames.Should().BeGreaterThan(64, "the writes filled the WAL");

        // Both: SQLite empties the file inside the TRUNCATE checkpoint, the counter goes up once it has returned.
        var waited = Stopwatch.StartNew();
        while ((new FileInfo(WalPath).Length > 0 || store.WalTruncations == 0) && waited.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(50, cancellationToken);
        }

        new FileInfo(WalPath).Length.Should().Be(0, "after 200 ms without a commit the checkpointer copied everything and truncated the WAL");
        store.WalTruncations.Should().BePositive();
        await store.CreateAsync(Spec("after"), cancellationToken);
        (await store.ListAsync("default", cancellationToken)).Should().HaveCount(1001);
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task AfterAReaderKeptTheWalLong_ItsFileIsCutBackWhenItStartsOver(CancellationToken cancellationToken)
    {
        const int writerFrames = 256; // the writer's hard point: 256 + 2 x 16 = 288 frames
        var store = Open(backgroundFrames: 16, writerFrames, busyTimeout: TimeSpan.FromSeconds(30), idleDelay: TimeSpan.FromHours(1));
        await store.CreateAsync(Spec("first"), cancellationToken);
        long framesWhilePinned;
        using (var reader = Database.OpenConnection())
        {
            var snapshot = reader.BeginTransaction(deferred: true);
            using (var read = reader.CreateCommand())
            {
                read.CommandText = "SELECT count(*) FROM microvms;";
                read.ExecuteScalar().Should().Be(1L); // the read transaction holds this snapshot from here on
            }

            var pinned = WriteAsync(store, 3000, writers: 8, prefix: "pinned");
            while (WalFrames < 4 * writerFrames && !pinned.IsCompleted)
            {
                await Task.Delay(20, cancellationToken);
            }

            framesWhilePinned = WalFrames;
            snapshot.Dispose();
            await pinned;
        }

        await WriteAsync(store, 3000, writers: 8, prefix: "after"); // the WAL starts over several times

        framesWhilePinned.Should().BeGreaterThanOrEqualTo(4 * writerFrames, "no checkpoint could copy past the reader's snapshot");
        WalFrames.Should().BeLessThanOrEqualTo(288 + 64, "journal_size_limit cut the file back to the hard point at a restart");
        (await store.ListAsync("default", cancellationToken)).Should().HaveCount(6001);
    }
}

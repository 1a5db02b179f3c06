using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using Hypercore.MicroVms;
using Hypercore.Store.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>What only the SQLite home promises: its file, its options, its clock, its watch buffer, its errors.</summary>
[TestFixture]
public sealed class SqliteStoreTests : TempDatabaseTest
{
    private static MicroVmSpec Spec(string id) => new()
    {
        Id = id,
        Kernel = new KernelSpec { Image = "/images/vmlinuz" },
    };

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    // ------------------------------------------------------------------ file and schema

    [Test]
    public void Open_MissingDirectory_CreatesItAndTheDatabase()
    {
        Directory.Exists(Path.GetDirectoryName(Database.Path)).Should().BeFalse();

        var store = Open();

        store.Name.Should().Be("sqlite");
        File.Exists(Database.Path).Should().BeTrue();
    }

    [Test]
    public void Open_SetsWalJournalAndRecordsSchemaVersion()
    {
        Open();

        using var connection = Database.OpenConnection();
        Scalar(connection, "PRAGMA journal_mode;").Should().Be("wal");
        Scalar(connection, "SELECT value FROM meta WHERE key = 'schema_version';").Should().Be((long)SqliteMicroVmStore.SchemaVersion);
        Scalar(connection, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'microvms';").Should().Be(1L);
    }

    [Test]
    public async Task Open_NewerSchemaVersion_ThrowsStoreException()
    {
        await Open().DisposeAsync();
        using (var connection = Database.OpenConnection())
        {
            using var command = connection.CreateCommand();
            command.CommandText = "UPDATE meta SET value = 99 WHERE key = 'schema_version';";
            command.ExecuteNonQuery();
        }

        var act = () => Database.Open();

        act.Should().Throw<StoreException>().WithMessage("*schema version 99*");
    }

    [Test]
    public void Open_FileIsNotADatabase_ThrowsStoreExceptionNamingTheProblem()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Database.Path)!);
        File.WriteAllText(Database.Path, new string('x', 8192));

        var act = () => Database.Open();

        act.Should().Throw<StoreException>().WithMessage("*not an SQLite database*").WithMessage($"*{Database.Path}*");
    }

    [Test]
    public void Open_InvalidOptions_ThrowsOptionsValidationException()
    {
        var act = () => Database.Open(configure: o => o.DatabasePath = " ");

        act.Should().Throw<OptionsValidationException>().WithMessage("*DatabasePath*");
    }

    [Test]
    public async Task Create_WritesSpecAsJsonWithEnumNames()
    {
        var store = Open();
        await store.CreateAsync(Spec("vm-1") with { State = DesiredState.Paused, RestartPolicy = RestartPolicy.Never });

        using var connection = Database.OpenConnection();
        var json = (string)Scalar(connection, "SELECT spec FROM microvms WHERE namespace = 'default' AND id = 'vm-1';")!;
        json.Should().Contain("\"state\":\"Paused\"").And.Contain("\"restartPolicy\":\"Never\"");
        var status = (string)Scalar(connection, "SELECT status FROM microvms WHERE id = 'vm-1';")!;
        status.Should().Contain("\"phase\":\"Pending\"");
    }

    [Test]
    public void Json_RichSpecAndStatus_RoundTripEqual()
    {
        var spec = new MicroVmSpec
        {
            Id = "vm-1",
            Labels = new Dictionary<string, string> { ["a"] = "1" },
            Kernel = new KernelSpec { Image = "/k", Cmdline = new Dictionary<string, string> { ["console"] = "ttyS0", ["quiet"] = "" } },
            AdditionalVolumes = [new VolumeSpec { Id = "d", HostPath = "/d.img", SizeInMb = 1 }],
            Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", Type = InterfaceType.Macvtap }],
            Metadata = new Dictionary<string, string> { ["k"] = "v" },
        };
        var at = new DateTimeOffset(2025, 1, 2, 3, 4, 5, 678, TimeSpan.FromHours(2));
        var status = new MicroVmStatus
        {
            Phase = Phase.CrashLoopBackOff,
            Conditions = [new Condition("Ready", ConditionStatus.False, "Crashed", "exit 1", at, 3)],
            Addresses = ["10.0.0.2", "fd00::2"],
            BootTime = at,
            Pid = 7,
        };

        var specBack = JsonSerializer.Deserialize(JsonSerializer.Serialize(spec, StoreJsonContext.Default.MicroVmSpec), StoreJsonContext.Default.MicroVmSpec);
        var statusBack = JsonSerializer.Deserialize(JsonSerializer.Serialize(status, StoreJsonContext.Default.MicroVmStatus), StoreJsonContext.Default.MicroVmStatus);

        specBack.Should().Be(spec);
        specBack!.Kernel.Cmdline.Should().Equal(spec.Kernel.Cmdline);
        statusBack.Should().Be(status);
        statusBack!.BootTime!.Value.Offset.Should().Be(TimeSpan.FromHours(2));
    }

    // ------------------------------------------------------------------ clock, node, versions

    [Test]
    public async Task CreateAndMarkForDeletion_UseTheInjectedClock()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2030, 5, 6, 7, 8, 9, TimeSpan.Zero));
        var store = Open(time);

        var created = await store.CreateAsync(Spec("vm-1"));
        time.Advance(TimeSpan.FromMinutes(5));
        var marked = await store.MarkForDeletionAsync(created.Key);

        created.CreatedAt.Should().Be(new DateTimeOffset(2030, 5, 6, 7, 8, 9, TimeSpan.Zero));
        marked.DeletionRequestedAt.Should().Be(new DateTimeOffset(2030, 5, 6, 7, 13, 9, TimeSpan.Zero));
        var read = await store.GetAsync(created.Key);
        read!.CreatedAt.Should().Be(created.CreatedAt);
        read.DeletionRequestedAt.Should().Be(marked.DeletionRequestedAt);
    }

    [Test]
    public async Task Claim_RecordsTheConfiguredNodeName_WritingOnlyOnce()
    {
        var store = Open(configure: o => o.NodeName = "node-7");
        var created = await store.CreateAsync(Spec("vm-1"));

        var first = await store.ClaimAsync(created.Key);
        var second = await store.ClaimAsync(created.Key);

        using var connection = Database.OpenConnection();
        Scalar(connection, "SELECT claimed_node FROM microvms WHERE id = 'vm-1';").Should().Be("node-7");
        second.ResourceVersion.Should().Be(first.ResourceVersion, "claiming again is a no-op");
    }

    [Test]
    public async Task ClaimWithStatus_IsOneWrite_OneVersionAndOneEventCarryingBoth()
    {
        var store = Open(configure: o => o.NodeName = "node-7");
        var created = await store.CreateAsync(Spec("vm-1"));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var watch = store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);

        var claimed = await store.ClaimWithStatusAsync(created.Key, new MicroVmStatus { Phase = Phase.Provisioning }, created.ResourceVersion);
        var marker = await store.CreateAsync(Spec("vm-marker"));

        long.Parse(claimed.ResourceVersion, CultureInfo.InvariantCulture).Should().Be(long.Parse(created.ResourceVersion, CultureInfo.InvariantCulture) + 1);
        (await watch.MoveNextAsync()).Should().BeTrue();
        watch.Current.Type.Should().Be(StoreEventType.Modified);
        watch.Current.MicroVm!.Claimed.Should().BeTrue();
        watch.Current.MicroVm.Status.Phase.Should().Be(Phase.Provisioning);
        (await watch.MoveNextAsync()).Should().BeTrue();
        watch.Current.MicroVm!.Key.Should().Be(marker.Key, "the claim and the status were one change, not two");
        using var connection = Database.OpenConnection();
        Scalar(connection, "SELECT claimed_node FROM microvms WHERE id = 'vm-1';").Should().Be("node-7");
    }

    [Test]
    public async Task CreateClaimed_IsOneWrite_DurableWithItsClaimAndStatus_AfterReopen()
    {
        var store = Open(configure: o => o.NodeName = "node-7");
        var before = await store.CreateAsync(Spec("vm-0"));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var status = new MicroVmStatus { Phase = Phase.Provisioning, Node = "node-7", ObservedGeneration = 1 };
        MicroVm created;
        await using (var watch = store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token))
        {
            created = await store.CreateClaimedAsync(Spec("vm-1"), status);
            var marker = await store.CreateAsync(Spec("vm-marker"));

            long.Parse(created.ResourceVersion, CultureInfo.InvariantCulture).Should().Be(long.Parse(before.ResourceVersion, CultureInfo.InvariantCulture) + 1, "one write, one version");
            created.Claimed.Should().BeTrue();
            created.Status.Should().Be(status);
            created.Generation.Should().Be(1);
            (await watch.MoveNextAsync()).Should().BeTrue();
            watch.Current.Type.Should().Be(StoreEventType.Added);
            watch.Current.MicroVm!.Claimed.Should().BeTrue();
            watch.Current.MicroVm.Status.Phase.Should().Be(Phase.Provisioning);
            (await watch.MoveNextAsync()).Should().BeTrue();
            watch.Current.MicroVm!.Key.Should().Be(marker.Key, "the record, its claim and its status were one change");
        }

        await store.DisposeAsync();
        using (var connection = Database.OpenConnection())
        {
            Scalar(connection, "SELECT claimed_node FROM microvms WHERE id = 'vm-1';").Should().Be("node-7");
            Scalar(connection, "SELECT claimed_node FROM microvms WHERE id = 'vm-0';").Should().BeOfType<DBNull>("a plain Create stays unclaimed");
        }

        var reopened = Open(configure: o => o.NodeName = "node-7");
        var read = (await reopened.GetAsync(created.Key))!;
        read.Claimed.Should().BeTrue();
        read.Status.Should().Be(status);
        read.Uid.Should().Be(created.Uid);
        read.ResourceVersion.Should().Be(created.ResourceVersion);
        (await reopened.GetAsync(before.Key))!.Claimed.Should().BeFalse();
    }

    [Test]
    public async Task CreateClaimed_ExistingKey_AlreadyExists_NothingChanged()
    {
        var store = Open();
        var first = await store.CreateAsync(Spec("vm-1"));

        var act = () => store.CreateClaimedAsync(Spec("vm-1"), new MicroVmStatus { Phase = Phase.Provisioning });

        await act.Should().ThrowAsync<AlreadyExistsException>();
        var read = (await store.GetAsync(first.Key))!;
        read.Claimed.Should().BeFalse();
        read.ResourceVersion.Should().Be(first.ResourceVersion);
        read.Status.Phase.Should().Be(Phase.Pending);
    }

    [Test]
    public async Task CreateClaimed_ThenStatusWrite_UpdatesTheClaimedRowAndKeepsTheClaim()
    {
        var store = Open();
        var created = await store.CreateClaimedAsync(Spec("vm-1"), new MicroVmStatus { Phase = Phase.Provisioning });

        var running = await store.UpdateStatusAsync(created.Key, created.Status with { Phase = Phase.Running, Pid = 7 }, created.ResourceVersion);
        await store.DisposeAsync();

        running.Claimed.Should().BeTrue();
        var read = (await Open().GetAsync(created.Key))!;
        read.Claimed.Should().BeTrue();
        read.Status.Phase.Should().Be(Phase.Running);
        read.Status.Pid.Should().Be(7);
    }

    [Test]
    public async Task Get_OfARecordThisStoreJustWrote_ReturnsTheWrittenRecordWithoutParsingTheRow()
    {
        var store = Open();
        var created = await store.CreateAsync(Spec("vm-1"));
        var written = await store.UpdateStatusAsync(created.Key, new MicroVmStatus { Phase = Phase.Running, Pid = 7 }, created.ResourceVersion);

        var read = await store.GetAsync(created.Key);

        read.Should().BeSameAs(written, "the row is at the version this writer committed (issue 15: no JSON parsed)");
    }

    [Test]
    public async Task Get_RowChangedOutsideThisStore_IsParsedFromTheRow()
    {
        var store = Open();
        var created = await store.CreateAsync(Spec("vm-1"));
        await store.GetAsync(created.Key);
        using (var connection = Database.OpenConnection())
        {
            // Another writer (e.g. a second process on the file) moves the row to a version this store never wrote.
            using var command = connection.CreateCommand();
            command.CommandText = "UPDATE microvms SET status = '{\"phase\":\"Failed\"}', resource_version = resource_version + 100 WHERE id = 'vm-1';";
            command.ExecuteNonQuery().Should().Be(1);
        }

        var read = (await store.GetAsync(created.Key))!;

        read.Should().NotBeSameAs(created);
        read.Status.Phase.Should().Be(Phase.Failed);
        read.ResourceVersion.Should().NotBe(created.ResourceVersion);
    }

    [Test]
    public async Task Get_AfterDeleteAndCreateAgain_ReturnsTheNewRecord()
    {
        var store = Open();
        var first = await store.CreateAsync(Spec("vm-1"));
        await store.MarkForDeletionAsync(first.Key);
        await store.RemoveAsync(first.Key);

        (await store.GetAsync(first.Key)).Should().BeNull();
        var second = await store.CreateAsync(Spec("vm-1"));

        (await store.GetAsync(first.Key))!.Uid.Should().Be(second.Uid);
    }

    [Test]
    public async Task ResourceVersion_IsAStoreWideIncreasingCounter_ThatSurvivesDeletesAndReopen()
    {
        var store = Open();
        var versions = new List<long>();
        var a = await store.CreateAsync(Spec("vm-a"));
        versions.Add(long.Parse(a.ResourceVersion, CultureInfo.InvariantCulture));
        var b = await store.CreateAsync(Spec("vm-b"));
        versions.Add(long.Parse(b.ResourceVersion, CultureInfo.InvariantCulture));
        a = await store.UpdateStatusAsync(a.Key, new MicroVmStatus { Phase = Phase.Running }, a.ResourceVersion);
        versions.Add(long.Parse(a.ResourceVersion, CultureInfo.InvariantCulture));
        await store.MarkForDeletionAsync(b.Key);
        await store.RemoveAsync(b.Key);
        await store.MarkForDeletionAsync(a.Key);
        await store.RemoveAsync(a.Key);
        await store.DisposeAsync();

        var reopened = Open();
        var c = await reopened.CreateAsync(Spec("vm-c"));
        versions.Add(long.Parse(c.ResourceVersion, CultureInfo.InvariantCulture));

        versions.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        versions[^1].Should().BeGreaterThan(7, "seven writes came before it, deletes included, although no row is left");
    }

    [Test]
    public async Task Create_Duplicate_DoesNotConsumeAResourceVersion()
    {
        var store = Open();
        var first = await store.CreateAsync(Spec("vm-a"));
        await FluentActions.Awaiting(() => store.CreateAsync(Spec("vm-a"))).Should().ThrowAsync<AlreadyExistsException>();

        var second = await store.CreateAsync(Spec("vm-b"));

        long.Parse(second.ResourceVersion, CultureInfo.InvariantCulture)
            .Should().Be(long.Parse(first.ResourceVersion, CultureInfo.InvariantCulture) + 1);
    }

    [Test]
    public async Task UpdateSpec_KeyMismatch_ThrowsArgumentException()
    {
        var store = Open();
        var created = await store.CreateAsync(Spec("vm-a"));

        var act = () => store.UpdateSpecAsync(created.Key, Spec("vm-b"), created.ResourceVersion);

        await act.Should().ThrowAsync<ArgumentException>();
        (await store.GetAsync(new VmKey("default", "vm-b"))).Should().BeNull();
    }

    [Test]
    public async Task Write_CancelledBeforeItRuns_IsNotStored()
    {
        var store = Open();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await FluentActions.Awaiting(() => store.CreateAsync(Spec("vm-a"), cts.Token)).Should().ThrowAsync<OperationCanceledException>();

        (await store.GetAsync(new VmKey("default", "vm-a"))).Should().BeNull();
    }

    // ------------------------------------------------------------------ watch

    [Test]
    public async Task Watch_ReaderThatFallsBehind_GetsResync_AndWritersAreNotBlocked()
    {
        var store = Open(configure: o => o.WatchBufferSize = 4);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var slow = store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);

        // Nobody reads while 20 writes land: they must all complete regardless.
        var writes = Task.WhenAll(Enumerable.Range(0, 20).Select(i => store.CreateAsync(Spec($"vm-{i:D2}"))));
        await writes.WaitAsync(TimeSpan.FromSeconds(60));

        (await slow.MoveNextAsync()).Should().BeTrue();
        slow.Current.Type.Should().Be(StoreEventType.Resync);
        slow.Current.MicroVm.Should().BeNull();
        var buffered = 0;
        var pending = slow.MoveNextAsync();
        while (pending.IsCompleted)
        {
            (await pending).Should().BeTrue();
            slow.Current.Type.Should().Be(StoreEventType.Added);
            buffered++;
            pending = slow.MoveNextAsync();
        }

        buffered.Should().BeLessThan(4, "the backlog was dropped; only events after the resync remain");
        await timeout.CancelAsync();
        await FluentActions.Awaiting(async () => await pending).Should().ThrowAsync<OperationCanceledException>();
    }

    [Test]
    public async Task Watch_AfterResync_KeepsDeliveringNewChanges()
    {
        var store = Open(configure: o => o.WatchBufferSize = 2);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var watch = store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        for (var i = 0; i < 5; i++)
        {
            await store.CreateAsync(Spec($"vm-{i}"));
        }

        // Drain what is buffered (a Resync first), then make one more change.
        (await watch.MoveNextAsync()).Should().BeTrue();
        watch.Current.Type.Should().Be(StoreEventType.Resync);
        var pending = watch.MoveNextAsync();
        while (pending.IsCompleted)
        {
            (await pending).Should().BeTrue();
            pending = watch.MoveNextAsync();
        }

        var late = await store.CreateAsync(Spec("vm-late"));

        (await pending).Should().BeTrue();
        watch.Current.Type.Should().Be(StoreEventType.Added);
        watch.Current.MicroVm!.Key.Should().Be(late.Key);
    }

    [Test]
    public async Task Watch_ConcurrentWriters_EventsArriveInResourceVersionOrder()
    {
        var store = Open();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var watch = store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);

        var created = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => Task.Run(() => store.CreateAsync(Spec($"vm-{i:D3}")))));

        var versions = new List<long>();
        while (versions.Count < created.Length)
        {
            (await watch.MoveNextAsync()).Should().BeTrue();
            watch.Current.Type.Should().Be(StoreEventType.Added);
            versions.Add(long.Parse(watch.Current.MicroVm!.ResourceVersion, CultureInfo.InvariantCulture));
        }

        versions.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        versions.Should().BeEquivalentTo(created.Select(v => long.Parse(v.ResourceVersion, CultureInfo.InvariantCulture)));
    }

    [Test]
    public async Task Watch_Cancelled_Unsubscribes()
    {
        var store = Open();
        using var cts = new CancellationTokenSource();
        var watch = store.WatchAsync(cts.Token);
        store.WatcherCount.Should().Be(1, "the subscription starts at the call, before enumeration");

        await cts.CancelAsync();

        store.WatcherCount.Should().Be(0);
        await FluentActions.Awaiting(async () =>
        {
            await foreach (var _ in watch.WithCancellation(cts.Token))
            {
            }
        }).Should().ThrowAsync<OperationCanceledException>();
    }

    [Test]
    public async Task Watch_EnumeratorDisposedWithoutMoveNext_Unsubscribes()
    {
        var store = Open();
        var watch = store.WatchAsync().GetAsyncEnumerator();
        store.WatcherCount.Should().Be(1);

        await watch.DisposeAsync();

        store.WatcherCount.Should().Be(0);
    }

    [Test]
    public async Task Watch_EnumeratorDisposedWhileWaiting_EndsTheWait()
    {
        var store = Open();
        var watch = store.WatchAsync().GetAsyncEnumerator();
        var pending = watch.MoveNextAsync();

        await watch.DisposeAsync();

        (await pending.AsTask().WaitAsync(TimeSpan.FromSeconds(60))).Should().BeFalse();
        store.WatcherCount.Should().Be(0);
    }

    [Test]
    public async Task Dispose_EndsOpenWatchStreams()
    {
        var store = Database.Open();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var watch = store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        var pending = watch.MoveNextAsync();

        await store.DisposeAsync();

        (await pending).Should().BeFalse();
        await watch.DisposeAsync();
    }

    // ------------------------------------------------------------------ errors

    [Test]
    public async Task Write_WhileAnotherProcessHoldsTheLock_ThrowsStoreExceptionSayingLocked_ThenRecovers()
    {
        var store = Open(configure: o => o.BusyTimeout = TimeSpan.FromSeconds(1));
        using var blocker = Database.OpenConnection();
        using (var begin = blocker.CreateCommand())
        {
            begin.CommandText = "BEGIN IMMEDIATE;";
            begin.ExecuteNonQuery();
        }

        var act = () => store.CreateAsync(Spec("vm-a"));

        (await act.Should().ThrowAsync<StoreException>().WaitAsync(TimeSpan.FromSeconds(60)))
            .Which.Message.Should().Contain("locked").And.Contain(Database.Path);
        using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK;";
            rollback.ExecuteNonQuery();
        }

        (await store.GetAsync(new VmKey("default", "vm-a"))).Should().BeNull();
        var created = await store.CreateAsync(Spec("vm-a"));
        (await store.GetAsync(created.Key)).Should().Be(created);
    }

    [Test]
    public async Task Read_CorruptRow_ThrowsStoreException()
    {
        var store = Open();
        await store.CreateAsync(Spec("vm-a"));
        using (var connection = Database.OpenConnection())
        {
            using var command = connection.CreateCommand();
            command.CommandText = "UPDATE microvms SET spec = 'not json' WHERE id = 'vm-a';";
            command.ExecuteNonQuery();
        }

        var act = () => store.GetAsync(new VmKey("default", "vm-a"));

        await act.Should().ThrowAsync<StoreException>().WithMessage("*not valid JSON*");
    }

    [Test]
    public async Task Write_FailingInsideABatch_FailsAloneAndOthersAreStored()
    {
        var store = Open();
        var victim = await store.CreateAsync(Spec("vm-bad") with { Namespace = "broken" });
        using (var connection = Database.OpenConnection())
        {
            using var command = connection.CreateCommand();
            command.CommandText = "UPDATE microvms SET spec = 'not json' WHERE namespace = 'broken';";
            command.ExecuteNonQuery();
        }

        var others = Enumerable.Range(0, 20).Select(i => store.CreateAsync(Spec($"vm-{i:D2}"))).ToList();
        var bad = store.UpdateStatusAsync(victim.Key, new MicroVmStatus { Phase = Phase.Running }, victim.ResourceVersion);
        var more = Enumerable.Range(20, 20).Select(i => store.CreateAsync(Spec($"vm-{i:D2}"))).ToList();

        await FluentActions.Awaiting(() => bad).Should().ThrowAsync<StoreException>();
        var stored = await Task.WhenAll(others.Concat(more));
        stored.Should().HaveCount(40);
        (await store.ListAsync("default")).Should().HaveCount(40);
        await FluentActions.Awaiting(() => store.GetAsync(victim.Key)).Should().ThrowAsync<StoreException>("the broken row is left as it was");
    }

    // ------------------------------------------------------------------ group commit

    [Test]
    public async Task ConcurrentWrites_QueuedDuringACommit_AreCommittedTogether()
    {
        var batchSizes = new List<int>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Hypercore" && instrument.Name == "hypercore.store.commit.writes")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<int>((_, size, _, _) =>
        {
            lock (batchSizes)
            {
                batchSizes.Add(size);
            }
        });
        listener.Start();

        var store = Open();
        await store.CreateAsync(Spec("warm-up"));

        // Hold the write lock from outside so the writer stalls in BEGIN and the next writes pile up behind it.
        using var blocker = Database.OpenConnection();
        using (var begin = blocker.CreateCommand())
        {
            begin.CommandText = "BEGIN IMMEDIATE;";
            begin.ExecuteNonQuery();
        }

        var first = store.CreateAsync(Spec("vm-first"));
        var rest = Enumerable.Range(0, 50).Select(i => store.CreateAsync(Spec($"vm-{i:D2}"))).ToList();
        using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK;";
            rollback.ExecuteNonQuery();
        }

        await Task.WhenAll(rest.Append(first)).WaitAsync(TimeSpan.FromSeconds(60));

        lock (batchSizes)
        {
            batchSizes.Should().Contain(size => size > 1);
            batchSizes.Sum().Should().BeGreaterThanOrEqualTo(52);
        }
    }

    [Test]
    public async Task Throughput_ConcurrentDurableCreates_AllStoredWithDistinctVersions()
    {
        var store = Open();
        const int sequential = 200;
        const int concurrent = 4000;
        const int writers = 64;

        var clock = Stopwatch.StartNew();
        for (var i = 0; i < sequential; i++)
        {
            await store.CreateAsync(Spec($"seq-{i:D4}"));
        }

        var sequentialRate = sequential / clock.Elapsed.TotalSeconds;

        var next = -1;
        clock.Restart();
        var results = await Task.WhenAll(Enumerable.Range(0, writers).Select(_ => Task.Run(async () =>
        {
            var mine = new List<MicroVm>();
            int i;
            while ((i = Interlocked.Increment(ref next)) < concurrent)
            {
                mine.Add(await store.CreateAsync(Spec($"par-{i:D5}")));
            }

            return mine;
        })));
        var concurrentRate = concurrent / clock.Elapsed.TotalSeconds;

        await TestContext.Out.WriteLineAsync(
            $"durable creates/s: {sequentialRate:F0} one at a time (one fsync each), {concurrentRate:F0} with {writers} concurrent writers (group commit)");
        var all = results.SelectMany(r => r).ToList();
        all.Should().HaveCount(concurrent);
        all.Select(v => v.ResourceVersion).Should().OnlyHaveUniqueItems();
        (await store.ListAsync("default")).Should().HaveCount(sequential + concurrent);
    }

    // ------------------------------------------------------------------ registration and options

    [Test]
    public async Task AddSqliteStore_RegistersOneSingletonStore()
    {
        var services = new ServiceCollection().AddLogging().AddSqliteStore(o => o.DatabasePath = Database.Path);
        await using var provider = services.BuildServiceProvider();

        provider.GetRequiredService<IStartupValidator>().Validate();
        var store = provider.GetRequiredService<IMicroVmStore>();

        store.Should().BeOfType<SqliteMicroVmStore>();
        provider.GetRequiredService<IMicroVmStore>().Should().BeSameAs(store);
        provider.GetRequiredService<SqliteMicroVmStore>().Should().BeSameAs(store);
        ((SqliteMicroVmStore)store).DatabasePath.Should().Be(Database.Path);
    }

    [Test]
    public async Task AddSqliteStore_InvalidOptions_FailStartupValidation()
    {
        var services = new ServiceCollection().AddLogging().AddSqliteStore(o =>
        {
            o.DatabasePath = "";
            o.WatchBufferSize = 1;
        });
        await using var provider = services.BuildServiceProvider();

        var act = () => provider.GetRequiredService<IStartupValidator>().Validate();

        act.Should().Throw<OptionsValidationException>().WithMessage("*DatabasePath*").WithMessage("*WatchBufferSize*");
    }

    [Test]
    public void Validator_PathIsADirectory_Fails()
    {
        var result = new SqliteStoreOptionsValidator().Validate(null, new SqliteStoreOptions { DatabasePath = Database.Directory });

        result.Failed.Should().BeTrue();
        result.FailureMessage.Should().Contain("is a directory");
    }

    [Test]
    public void Validator_DirectoryCannotBeCreated_Fails()
    {
        var file = Path.Combine(Database.Directory, "a-file");
        File.WriteAllText(file, "x");

        var result = new SqliteStoreOptionsValidator().Validate(null, new SqliteStoreOptions { DatabasePath = Path.Combine(file, "sub", "hypercore.db") });

        result.Failed.Should().BeTrue();
        result.FailureMessage.Should().Contain("cannot create the directory");
    }

    [Test]
    public void Validator_Defaults_WithWritablePath_Succeed()
    {
        var result = new SqliteStoreOptionsValidator().Validate(null, new SqliteStoreOptions { DatabasePath = Database.Path });

        result.Succeeded.Should().BeTrue(result.FailureMessage);
        new SqliteStoreOptions().NodeName.Should().Be(Environment.MachineName.ToLowerInvariant());
    }
}

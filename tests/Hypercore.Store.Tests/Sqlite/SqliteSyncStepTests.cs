using System.Collections.Concurrent;
using System.Globalization;
using Hypercore.MicroVms;
using Hypercore.Store.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// Issue 15, fourteenth pass: the writer commits with synchronous=NORMAL and a sync step fdatasyncs the WAL after the
/// COMMIT, on a thread of its own, while the writer commits the next batch. No caller and no watcher may hear of a write
/// before a sync that began after its commit; one sync covers every commit before it; a failed sync stops the store.
/// The sync is wrapped here (<see cref="SqliteStoreOptions.WalSync"/>) to hold it or to fail it; the real fdatasync
/// still runs whenever the wrapper lets it.
/// </summary>
[TestFixture]
public sealed class SqliteSyncStepTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    private TempDatabase _database = null!;
    private SyncGate _gate = null!;

    [SetUp]
    public void SetUp()
    {
        _database = new TempDatabase();
        _gate = new SyncGate();
    }

    [TearDown]
    public void TearDown()
    {
        _gate.Open(); // a test that failed midway must not leave the sync step (and the store's close) blocked
        _database.Dispose();
    }

    [Test]
    public async Task TheWriterCommitsWithoutSyncing_AndTheSyncStepSyncsTheWal()
    {
        await using var store = Open();
        await store.CreateAsync(Spec("vm-a"));

        store.PipelinedSync.Should().BeTrue("on Linux the store syncs the WAL itself, with SQLite's COMMIT not syncing");
        store.WalSyncs.Should().BeGreaterThan(0);
        _gate.Calls.Should().Be((int)store.WalSyncs);
    }

    [Test]
    public async Task HeldSync_TheWriteIsCommittedButNeitherItsCallerNorAWatcherHearsOfItUntilTheSync()
    {
        await using var store = Open();
        await store.CreateAsync(Spec("warm")); // the sync step is running
        using var timeout = new CancellationTokenSource(Long);
        await using var watch = store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);

        _gate.Hold();
        var create = store.CreateAsync(Spec("vm-a"));
        await _gate.WaitEnteredAsync(1);

        // Committed: readers on other connections can see it (documented: a crash of the process keeps it; a power loss
        // may lose it, and its caller was never told it was written).
        await WaitVisibleAsync(store, "vm-a");
        await Task.Delay(300);
        create.IsCompleted.Should().BeFalse("the caller is answered only after the sync that covers its commit");
        var next = watch.MoveNextAsync().AsTask();
        await Task.Delay(100);
        next.IsCompleted.Should().BeFalse("no watcher sees the event before its sync");

        _gate.Open();
        (await create.WaitAsync(Long)).Spec.Id.Should().Be("vm-a");
        (await next.WaitAsync(Long)).Should().BeTrue();
        watch.Current.MicroVm!.Spec.Id.Should().Be("vm-a");
    }

    [Test]
    public async Task CommitsDuringAHeldSync_AreAllAcknowledgedByTheNextSync_InCommitOrder()
    {
        await using var store = Open();
        await store.CreateAsync(Spec("warm"));
        using var timeout = new CancellationTokenSource(Long);
        await using var watch = store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        var syncsBefore = store.WalSyncs;

        _gate.Hold();
        var released = new RecordingScheduler();
        var writes = new List<Task<MicroVm>>();
        var after = new List<Task>();
        for (var i = 0; i < 5; i++)
        {
            // One commit each: the next write is queued only once this one is committed (visible to a reader).
            var write = store.CreateAsync(Spec($"vm-{i}"));
            writes.Add(write);
            after.Add(write.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, released));
            await WaitVisibleAsync(store, $"vm-{i}");
            if (i == 0)
            {
                await _gate.WaitEnteredAsync(1); // the held sync took the first commit alone
            }
        }

        await Task.Delay(200);
        writes.Should().OnlyContain(w => !w.IsCompleted, "the first commit's sync is held, and the others wait for a sync after theirs");
        _gate.Open();
        await Task.WhenAll(after).WaitAsync(Long);

        store.WalSyncs.Should().Be(syncsBefore + 2, "the held sync covered the first commit, and one more sync every commit made while it was held");
        released.Queued.Should().Equal(after.Select(t => t.Id), "callers are released in commit order");
        var versions = writes.Select(w => long.Parse(w.Result.ResourceVersion, CultureInfo.InvariantCulture)).ToList();
        versions.Should().BeInAscendingOrder();
        for (var i = 0; i < writes.Count; i++)
        {
            (await watch.MoveNextAsync()).Should().BeTrue();
            watch.Current.MicroVm!.Spec.Id.Should().Be($"vm-{i}");
        }
    }

    [Test]
    public async Task AReadDecidedFailure_WaitsForTheSyncOfTheCommitItDependsOn()
    {
        await using var store = Open();
        await store.CreateAsync(Spec("warm"));

        _gate.Hold();
        var first = store.CreateAsync(Spec("vm-a"));
        await WaitVisibleAsync(store, "vm-a");
        var again = store.CreateAsync(Spec("vm-a")); // decided by reading the row of an unsynced commit
        await Task.Delay(300);
        again.IsCompleted.Should().BeFalse("\"already exists\" describes a commit that is not durable yet");

        _gate.Open();
        await first.WaitAsync(Long);
        await FluentActions.Awaiting(() => again.WaitAsync(Long)).Should().ThrowAsync<AlreadyExistsException>();
    }

    [Test]
    public async Task FailedSync_FailsItsBatchAndEveryLaterOne_AndTheStoreRefusesWrites()
    {
        await using var store = Open();
        var warm = await store.CreateAsync(Spec("warm"));
        using var timeout = new CancellationTokenSource(Long);
        await using var watch = store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);

        _gate.Hold();
        _gate.FailHeld = true;
        var writes = new List<Task<MicroVm>>();
        for (var i = 0; i < 3; i++)
        {
            writes.Add(store.CreateAsync(Spec($"vm-{i}")));
            await WaitVisibleAsync(store, $"vm-{i}");
        }

        var next = watch.MoveNextAsync().AsTask();
        _gate.Open(); // the held sync now fails (EIO)
        foreach (var write in writes)
        {
            var failed = await FluentActions.Awaiting(() => write.WaitAsync(Long)).Should().ThrowAsync<StoreException>();
            failed.Which.Message.Should().Contain("sync of the WAL failed").And.Contain("refuses every write").And.Contain("Restart the daemon");
        }

        // Even with the disk "working" again: after a failed sync its success would prove nothing.
        _gate.FailHeld = false;
        await FluentActions.Awaiting(() => store.CreateAsync(Spec("after"))).Should().ThrowAsync<StoreException>();
        await FluentActions.Awaiting(() => store.UpdateStatusAsync(warm.Key, warm.Status with { Phase = Phase.Stopped }, warm.ResourceVersion))
            .Should().ThrowAsync<StoreException>();
        await Task.Delay(200);
        next.IsCompleted.Should().BeFalse("no event of an unsynced batch is published");
        (await store.GetAsync(new VmKey("default", "after"))).Should().BeNull("nothing is written after the failure");
    }

    [Test]
    public async Task Dispose_WithASyncHeld_WaitsForItAndAcknowledgesTheWrite()
    {
        var store = Open();
        await store.CreateAsync(Spec("warm"));
        _gate.Hold();
        var create = store.CreateAsync(Spec("vm-a"));
        await _gate.WaitEnteredAsync(1);

        var closing = store.DisposeAsync().AsTask();
        await Task.Delay(300);
        closing.IsCompleted.Should().BeFalse("the store closes only after the sync step released what it holds");
        _gate.Open();
        await closing.WaitAsync(Long);
        (await create.WaitAsync(Long)).Spec.Id.Should().Be("vm-a");

        await using var reopened = _database.Open();
        (await reopened.GetAsync(new VmKey("default", "vm-a"))).Should().NotBeNull();
    }

    private SqliteMicroVmStore Open() => _database.Open(configure: o =>
    {
        o.WalSync = _gate.Sync;
        o.BackgroundWriteWait = TimeSpan.Zero;
    });

    private static async Task WaitVisibleAsync(SqliteMicroVmStore store, string id)
    {
        var deadline = DateTime.UtcNow + Long;
        while (await store.GetAsync(new VmKey("default", id)) is null)
        {
            DateTime.UtcNow.Should().BeBefore(deadline, $"{id} should be committed");
            await Task.Delay(5);
        }
    }

    private static MicroVmSpec Spec(string id) => new() { Id = id, Kernel = new KernelSpec { Image = "/images/vmlinuz" } };

    /// <summary>Wraps the sync: holds it while shut, and then fails it when told to (as an EIO from fdatasync).</summary>
    private sealed class SyncGate
    {
        private readonly ManualResetEventSlim _open = new(initialState: true);
        private readonly SemaphoreSlim _entered = new(0);
        private int _calls;
        private volatile bool _holding;

        public bool FailHeld { get; set; }

        public int Calls => Volatile.Read(ref _calls);

        public void Hold()
        {
            _open.Reset();
            _holding = true;
        }

        public void Open() => _open.Set();

        public async Task WaitEnteredAsync(int count)
        {
            for (var i = 0; i < count; i++)
            {
                (await _entered.WaitAsync(Long)).Should().BeTrue("a sync should have started");
            }
        }

        public void Sync(Action sync)
        {
            Interlocked.Increment(ref _calls);
            if (_holding)
            {
                _entered.Release();
                _open.Wait();
                if (FailHeld)
                {
                    throw new IOException("Input/output error (errno 5), injected");
                }
            }

            sync();
        }
    }

    /// <summary>Runs each task on the thread pool and notes the order in which they were queued.</summary>
    private sealed class RecordingScheduler : TaskScheduler
    {
        private readonly ConcurrentQueue<int> _queued = new();

        public IReadOnlyList<int> Queued => [.. _queued];

        protected override void QueueTask(Task task)
        {
            _queued.Enqueue(task.Id);
            ThreadPool.UnsafeQueueUserWorkItem(t => TryExecuteTask(t), task, preferLocal: false);
        }

        protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => false;

        protected override IEnumerable<Task> GetScheduledTasks() => [];
    }
}

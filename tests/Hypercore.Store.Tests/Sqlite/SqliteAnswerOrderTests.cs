using System.Collections.Concurrent;
using Hypercore.MicroVms;
using Hypercore.Store.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// The order in which the writer releases a commit's callers (issue 15, eighth pass): an API request's before the
/// reconciler's, so that an answer does not wait on the thread pool behind the reconcile passes committed with it; and
/// (thirteenth pass) the reconciler's callers at their own commit, not held for the next one (the eleventh pass held them
/// while the next batch committed, when a core had nothing else to run).
/// </summary>
[TestFixture]
public sealed class SqliteAnswerOrderTests
{
    private TempDatabase _database = null!;

    [SetUp]
    public void SetUp() => _database = new TempDatabase();

    [TearDown]
    public void TearDown() => _database.Dispose();

    [Test]
    public async Task OneCommit_AStatusWriteQueuedBeforeACreate_TheCreatesCallerIsReleasedFirst()
    {
        await using var store = _database.Open(configure: o => o.BusyTimeout = TimeSpan.FromSeconds(60));
        var existing = await store.CreateAsync(Spec("vm-a")); // the first commit also sets up the busy handler
        using var blocker = _database.OpenConnection();
        Execute(blocker, "BEGIN IMMEDIATE;");

        // The writer takes this write and waits for the lock; what follows queues up behind it as one batch.
        var first = store.CreateAsync(Spec("vm-b"));
        await Task.Delay(TimeSpan.FromSeconds(1));
        first.IsCompleted.Should().BeFalse("the other connection holds the write lock");
        var status = store.UpdateStatusAsync(existing.Key, existing.Status with { Phase = Phase.Stopped }, existing.ResourceVersion);
        var create = store.CreateAsync(Spec("vm-c"));

        // Each caller's continuation is queued to the scheduler it awaits on when the writer completes it: the order
        // of QueueTask is the order of completion, with no thread pool race in between.
        var released = new RecordingScheduler();
        var afterStatus = status.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, released);
        var afterCreate = create.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, released);
        Execute(blocker, "ROLLBACK;");
        await Task.WhenAll(first, status, create, afterStatus, afterCreate).WaitAsync(TimeSpan.FromSeconds(60));

        (await status).Status.Phase.Should().Be(Phase.Stopped);
        released.Queued.Should().Equal([afterCreate.Id, afterStatus.Id], "the Create was queued after the status write, in the same commit");
    }

    [Test]
    public async Task NextCommitAlreadyQueued_TheReconcilersCallerIsReleasedAtItsOwnCommit()
    {
        await using var store = _database.Open(configure: o =>
        {
            o.BusyTimeout = TimeSpan.FromSeconds(60);
            o.BackgroundWriteWait = TimeSpan.Zero; // the status write commits alone, without waiting for the Create
        });
        var existing = await store.CreateAsync(Spec("vm-a"));
        using var blocker = _database.OpenConnection();
        Execute(blocker, "BEGIN IMMEDIATE;");

        // The writer takes the status write and waits for the lock; the Create queues behind it for the next commit.
        var status = store.UpdateStatusAsync(existing.Key, existing.Status with { Phase = Phase.Stopped }, existing.ResourceVersion);
        await Task.Delay(TimeSpan.FromSeconds(1));
        status.IsCompleted.Should().BeFalse("the other connection holds the write lock");
        var create = store.CreateAsync(Spec("vm-b"));

        var released = new RecordingScheduler();
        var afterStatus = status.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, released);
        var afterCreate = create.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, released);
        Execute(blocker, "ROLLBACK;");
        await Task.WhenAll(status, create, afterStatus, afterCreate).WaitAsync(TimeSpan.FromSeconds(60));

        (await status).Status.Phase.Should().Be(Phase.Stopped);
        released.Queued.Should().Equal(
            [afterStatus.Id, afterCreate.Id],
            "the status write committed first: its caller is not held while the Create queued behind it commits");
    }

    private static MicroVmSpec Spec(string id) => new() { Id = id, Kernel = new KernelSpec { Image = "/images/vmlinuz" } };

    private static void Execute(Microsoft.Data.Sqlite.SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
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

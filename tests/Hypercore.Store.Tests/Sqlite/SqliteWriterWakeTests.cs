using Hypercore.MicroVms;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// Issue 15, tenth pass: a write queued while the store's writer thread sleeps wakes it from the queuing thread, not
/// through a thread-pool work item. Under load the pool's global queue holds the answers and the reconciler's work; a
/// wake-up queued behind them held the next commit back. Here the pool is made unable to run anything (every thread and
/// thousands of queued items blocked on a gate): the write must still commit.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class SqliteWriterWakeTests
{
    private TempDatabase _database = null!;

    [SetUp]
    public void SetUp() => _database = new TempDatabase();

    [TearDown]
    public void TearDown() => _database.Dispose();

    [Test]
    public void Store_WriteWhileThePoolIsBlocked_CommitsWithoutAPoolThread()
    {
        // Synchronous on purpose: the test's own thread queues the write and waits for it, no pool thread involved.
        var store = _database.Open();
        // Not disposed: the queued items may reach gate.Wait() after the test has returned (a disposed gate there threw on a
        // pool thread and took the test host down); once set it stays set, and it holds no kernel handle until waited on.
        var gate = new ManualResetEventSlim();
        var started = 0;
        try
        {
            store.CreateAsync(Spec("warm")).Wait(TimeSpan.FromSeconds(60)).Should().BeTrue("the store works at all");
            Thread.Sleep(200); // the writer is asleep again, waiting for the next write

            // More blocked items than the pool can add threads for in the time allowed (it injects a thread every ~0.5 s
            // when starved): anything queued after them does not run while the gate is shut.
            for (var i = 0; i < 2000; i++)
            {
                ThreadPool.UnsafeQueueUserWorkItem(_ => { Interlocked.Increment(ref started); gate.Wait(); }, null);
            }

            SpinWait.SpinUntil(() => Volatile.Read(ref started) >= Math.Min(2, Environment.ProcessorCount), TimeSpan.FromSeconds(10));

            var write = store.CreateAsync(Spec("while-blocked"));
            write.Wait(TimeSpan.FromSeconds(20)).Should().BeTrue(
                "the writer is woken by the thread that queued the write; through a pool work item it would wait behind the blocked ones");
            write.Result.Spec.Id.Should().Be("while-blocked");
        }
        finally
        {
            gate.Set();
            store.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(60));
        }
    }

    private static MicroVmSpec Spec(string id) => new() { Id = id, Kernel = new KernelSpec { Image = "/images/vmlinuz" } };
}

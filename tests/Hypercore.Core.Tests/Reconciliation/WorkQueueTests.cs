using Hypercore.Reconciliation;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Reconciliation;

public class WorkQueueTests
{
    private FakeTimeProvider _time = null!;
    private WorkQueue<string> _queue = null!;

    [SetUp]
    public void SetUp()
    {
        _time = new FakeTimeProvider();
        _queue = new WorkQueue<string>(_time, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(8));
    }

    [TearDown]
    public void TearDown() => _queue.Dispose();

    [Test]
    public async Task Add_DuplicateKeys_CollapseIntoOne()
    {
        _queue.Add("a");
        _queue.Add("a");
        _queue.Add("b");
        _queue.Add("a");

        _queue.Depth.Should().Be(2);
        (await Take()).Should().Be("a");
        (await Take()).Should().Be("b");
        _queue.Depth.Should().Be(0);
    }

    [Test]
    public Task HandOutHere_RunsTheWaitingWorkerOnThisThread_UntilItWaits() => Task.Run(async () =>
    {
        // Off the test's own context: a worker's continuation runs where HandOutHere is called, and nowhere else.
        int? ranOn = null;
        var pass = new TaskCompletionSource();
        async Task Worker()
        {
            var (_, key) = await _queue.TakeAsync(CancellationToken.None);
            ranOn = Environment.CurrentManagedThreadId;
            await pass.Task; // the pass waits (for its claim)
            _queue.Done(key);
        }

        var worker = Worker();
        _queue.AddHeld("a");
        await Task.Delay(50);
        ranOn.Should().BeNull("AddHeld queues the key but wakes no worker");
        _queue.Depth.Should().Be(1);

        _queue.HandOutHere(1);
        ranOn.Should().Be(Environment.CurrentManagedThreadId, "the waiting worker ran here, up to its first wait, before HandOutHere returned");
        _queue.Depth.Should().Be(0);
        pass.SetResult();
        await worker;
    });

    [Test]
    public Task HandOutHere_AWorkerDoneWithoutWaiting_TakesItsNextKeyElsewhere() => Task.Run(async () =>
    {
        // (key, taken on this thread before HandOutHere returned, i.e. inside it)
        var taken = new List<(string Key, bool InsideHandOut)>();
        var here = Environment.CurrentManagedThreadId;
        var returned = false;
        async Task Worker()
        {
            for (var i = 0; i < 2; i++)
            {
                var (_, key) = await _queue.TakeAsync(CancellationToken.None);
                lock (taken)
                {
                    taken.Add((key, Environment.CurrentManagedThreadId == here && !Volatile.Read(ref returned)));
                }

                _queue.Done(key); // a pass with nothing to wait for
            }
        }

        var worker = Worker();
        _queue.AddHeld("a");
        _queue.AddHeld("b");
        _queue.HandOutHere(1);
        Volatile.Write(ref returned, true);

        await worker.WaitAsync(TimeSpan.FromSeconds(20));
        taken.Should().Equal([("a", true), ("b", false)],
            "one pass runs on the caller's thread; the worker's next key is handed to it through the thread pool");
    });

    [Test]
    public Task AddAfter_WhenDue_TheWaitingWorkerRunsInTheTimersCallback() => Task.Run(async () =>
    {
        int? ranOn = null;
        var pass = new TaskCompletionSource();
        async Task Worker()
        {
            var (_, key) = await _queue.TakeAsync(CancellationToken.None);
            ranOn = Environment.CurrentManagedThreadId;
            await pass.Task;
            _queue.Done(key);
        }

        var worker = Worker();
        _queue.AddAfter("a", TimeSpan.FromSeconds(2));
        _time.Advance(TimeSpan.FromSeconds(2)); // the fake clock runs the timer's callback here, on this thread

        ranOn.Should().Be(Environment.CurrentManagedThreadId, "the key that came due was handed to the waiting worker in the timer's callback");
        pass.SetResult();
        await worker;
    });

    [Test]
    public async Task AddHeld_TheKeyIsTakenByTheNextTaker_AndByAnAddsHandOut()
    {
        _queue.AddHeld("a");
        (await Take()).Should().Be("a", "a held key is queued like any other");

        var waiting = _queue.TakeAsync(CancellationToken.None);
        _queue.AddHeld("b");
        _queue.Add("c"); // hands out the queue's first key: the held one
        (await waiting).Key.Should().Be("b");
        (await Take()).Should().Be("c");
    }

    [Test]
    public async Task Add_WhileProcessing_IsNotHandedOutUntilDone()
    {
        _queue.Add("a");
        var key = await Take();
        _queue.Add("a");

        _queue.Depth.Should().Be(0, "a key being worked must not be handed to a second worker");
        var second = _queue.TakeAsync(CancellationToken.None);
        await Task.Delay(50);
        second.IsCompleted.Should().BeFalse();

        _queue.Done(key);
        (await second).Key.Should().Be("a");
    }

    [Test]
    public async Task AddRateLimited_DoublesUpToTheCap_AndForgetResets()
    {
        _queue.AddRateLimited("a").Should().Be(TimeSpan.FromSeconds(1));
        _queue.AddRateLimited("a").Should().Be(TimeSpan.FromSeconds(2));
        _queue.AddRateLimited("a").Should().Be(TimeSpan.FromSeconds(4));
        _queue.AddRateLimited("a").Should().Be(TimeSpan.FromSeconds(8));
        _queue.AddRateLimited("a").Should().Be(TimeSpan.FromSeconds(8), "the backoff is capped");
        _queue.Failures("a").Should().Be(5);

        _queue.Forget("a");
        _queue.Failures("a").Should().Be(0);
        _queue.AddRateLimited("a").Should().Be(TimeSpan.FromSeconds(1));
        await Task.CompletedTask;
    }

    [Test]
    public async Task AddAfter_QueuesOnlyWhenTheDelayHasPassed()
    {
        _queue.AddAfter("a", TimeSpan.FromSeconds(5));
        _queue.Depth.Should().Be(0);

        _time.Advance(TimeSpan.FromSeconds(4));
        _queue.Depth.Should().Be(0);

        _time.Advance(TimeSpan.FromSeconds(1));
        _queue.Depth.Should().Be(1);
        (await Take()).Should().Be("a");
    }

    [Test]
    public void AddAfter_EarlierDelayWins()
    {
        _queue.AddAfter("a", TimeSpan.FromSeconds(10));
        _queue.AddAfter("a", TimeSpan.FromSeconds(2));
        _time.Advance(TimeSpan.FromSeconds(2));
        _queue.Depth.Should().Be(1);
        _time.Advance(TimeSpan.FromSeconds(10));
        _queue.Depth.Should().Be(1, "the later timer was replaced, not added");
    }

    [Test]
    public async Task AddAfter_ManyKeysOutOfOrder_EachQueuedWhenItsOwnDelayPasses()
    {
        _queue.AddAfter("c", TimeSpan.FromSeconds(3));
        _queue.AddAfter("a", TimeSpan.FromSeconds(1));
        _queue.AddAfter("b", TimeSpan.FromSeconds(2));
        _queue.DelayedCount.Should().Be(3);

        _time.Advance(TimeSpan.FromSeconds(1));
        _queue.Depth.Should().Be(1);
        (await Take()).Should().Be("a");
        _time.Advance(TimeSpan.FromSeconds(1));
        (await Take()).Should().Be("b");
        _queue.Depth.Should().Be(0);
        _time.Advance(TimeSpan.FromSeconds(1));
        (await Take()).Should().Be("c");
        _queue.DelayedCount.Should().Be(0);
    }

    [Test]
    public async Task AddAfter_LaterKeyAddedBeforeAnEarlierOne_TheEarlierIsNotHeldBack()
    {
        _queue.AddAfter("late", TimeSpan.FromSeconds(60));
        _queue.AddAfter("soon", TimeSpan.FromSeconds(1));

        _time.Advance(TimeSpan.FromSeconds(1));
        (await Take()).Should().Be("soon");
        _time.Advance(TimeSpan.FromSeconds(58));
        _queue.Depth.Should().Be(0);
        _time.Advance(TimeSpan.FromSeconds(1));
        (await Take()).Should().Be("late");
    }

    [Test]
    public async Task AddAfter_SameKeyAgainAfterItFired_IsDelayedAgain()
    {
        _queue.AddAfter("a", TimeSpan.FromSeconds(2));
        _time.Advance(TimeSpan.FromSeconds(2));
        (await Take()).Should().Be("a");
        _queue.Done("a");

        _queue.AddAfter("a", TimeSpan.FromSeconds(2));
        _time.Advance(TimeSpan.FromSeconds(1));
        _queue.Depth.Should().Be(0);
        _time.Advance(TimeSpan.FromSeconds(1));
        (await Take()).Should().Be("a");
    }

    [Test]
    public void AddAfter_TenThousandKeys_AllQueuedOnceWhenDue()
    {
        for (var i = 0; i < 10_000; i++)
        {
            _queue.AddAfter($"k{i}", TimeSpan.FromMilliseconds(1000 + (i * 7919 % 1000)));
        }

        _time.Advance(TimeSpan.FromMilliseconds(999));
        _queue.Depth.Should().Be(0);
        _time.Advance(TimeSpan.FromMilliseconds(1001));
        _queue.Depth.Should().Be(10_000);
        _queue.DelayedCount.Should().Be(0);
    }

    [Test]
    public void AddAfterWithAStep_KeysDueWithinOneStep_AreHandedOutByOneTimerCallback()
    {
        var time = new CountingTime();
        using var queue = new WorkQueue<string>(time, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(8));
        var step = TimeSpan.FromMilliseconds(20);
        time.Advance(TimeSpan.FromMilliseconds(5)); // the fake clock starts on a step; these keys fall due 1,005–1,019 ms in
        for (var i = 0; i < 15; i++)
        {
            queue.AddAfter($"k{i}", TimeSpan.FromMilliseconds(1000 + i), step);
        }

        time.Advance(TimeSpan.FromMilliseconds(994)); // 999 ms: before the step they were rounded down to
        queue.Depth.Should().Be(0);
        time.Fires.Should().Be(0);

        time.Advance(TimeSpan.FromMilliseconds(1)); // 1,000 ms: each up to 19 ms early, none late
        queue.Depth.Should().Be(15);
        time.Fires.Should().Be(1, "keys due within one step start from one timer callback");
        queue.DelayedCount.Should().Be(0);
    }

    [Test]
    public void AddAfterWithoutAStep_KeysDueApart_FireOneCallbackEach()
    {
        // The same keys with exact delays: what polls cost before the step (one timer callback per poll).
        var time = new CountingTime();
        using var queue = new WorkQueue<string>(time, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(8));
        time.Advance(TimeSpan.FromMilliseconds(5));
        for (var i = 0; i < 15; i++)
        {
            queue.AddAfter($"k{i}", TimeSpan.FromMilliseconds(1000 + i));
        }

        for (var i = 0; i < 15; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(i == 0 ? 1000 : 1));
        }

        queue.Depth.Should().Be(15);
        time.Fires.Should().Be(15);
    }

    [Test]
    public void AddAfterWithAStep_DelayUnderTwoSteps_IsExact()
    {
        var step = TimeSpan.FromMilliseconds(20);
        _time.Advance(TimeSpan.FromMilliseconds(5));
        _queue.AddAfter("a", TimeSpan.FromMilliseconds(30), step); // rounded down it would be due 10 ms from now

        _time.Advance(TimeSpan.FromMilliseconds(29));
        _queue.Depth.Should().Be(0);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        _queue.Depth.Should().Be(1);
    }

    [Test]
    public void AddAfterWithAStep_AnEarlierExactDelayForTheKeyStillWins()
    {
        var step = TimeSpan.FromMilliseconds(20);
        _queue.AddAfter("a", TimeSpan.FromMilliseconds(50));
        _queue.AddAfter("a", TimeSpan.FromSeconds(2), step);

        _time.Advance(TimeSpan.FromMilliseconds(50));
        _queue.Depth.Should().Be(1);
        _time.Advance(TimeSpan.FromSeconds(2));
        _queue.Depth.Should().Be(1, "the later, rounded delay was not added beside it");
    }

    [Test]
    public void ShutDown_WithDelayedKeys_QueuesNothingLater()
    {
        _queue.AddAfter("a", TimeSpan.FromSeconds(1));
        _queue.ShutDown();
        _time.Advance(TimeSpan.FromSeconds(5));
        _queue.Depth.Should().Be(0);
        _queue.DelayedCount.Should().Be(0);
    }

    [Test]
    public async Task ShutDown_ReleasesWaitingTakers()
    {
        var waiting = _queue.TakeAsync(CancellationToken.None);
        _queue.ShutDown();
        (await waiting).Ok.Should().BeFalse();
    }

    [Test]
    public async Task TakeAsync_AWorkerWaitsAndIsHandedAKey_AllocatesNothingOncePooled()
    {
        // Issue 15 (alloc7): the work loop's wait. SemaphoreSlim.WaitAsync made a task node, two state machines and a
        // cancellation promise every time a worker waited (~0.5 KB per Create); the queue's own waiters are pooled.
        using var stopping = new CancellationTokenSource(); // cancellable, as the host's stopping token is
        var perCycle = await Task.Run(async () =>
        {
            async Task CycleAsync()
            {
                var waiting = _queue.TakeAsync(stopping.Token);
                _queue.Add("a"); // handed to the waiting worker
                var (ok, key) = await waiting;
                _queue.Done(key);
                if (!ok)
                {
                    throw new InvalidOperationException("the queue was shut down");
                }
            }

            for (var i = 0; i < 100; i++)
            {
                await CycleAsync(); // warm-up: the waiter, the registration node, JIT
            }

            const int cycles = 2_000;
            var before = GC.GetTotalAllocatedBytes(precise: true);
            for (var i = 0; i < cycles; i++)
            {
                await CycleAsync();
            }

            return (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)cycles;
        });

        perCycle.Should().BeLessThan(64, "a wait, a hand-off and a Done allocate nothing (the semaphore's wait was ~400 bytes)");
    }

    [Test]
    public async Task TakeAsync_CancelledWhileWaiting_ThrowsAndTheKeyGoesToTheNextTaker()
    {
        using var cts = new CancellationTokenSource();
        var waiting = _queue.TakeAsync(cts.Token);
        await cts.CancelAsync();

        var act = async () => await waiting;
        await act.Should().ThrowAsync<OperationCanceledException>();
        _queue.Add("a");
        _queue.Depth.Should().Be(1, "a cancelled waiter is not handed keys");
        (await Take()).Should().Be("a");
    }

    [Test]
    public async Task TakeAsync_TwoWaiters_AreHandedKeysInTheOrderTheyWaited()
    {
        var first = _queue.TakeAsync(CancellationToken.None);
        var second = _queue.TakeAsync(CancellationToken.None);
        _queue.Add("a");
        _queue.Add("b");

        (await first).Key.Should().Be("a");
        (await second).Key.Should().Be("b");
        _queue.Depth.Should().Be(0);
    }

    /// <summary>A fake clock that counts the callbacks of the timers made from it.</summary>
    private sealed class CountingTime : FakeTimeProvider
    {
        public int Fires;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            base.CreateTimer(s =>
            {
                Interlocked.Increment(ref Fires);
                callback(s);
            }, state, dueTime, period);
    }

    private async Task<string> Take()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var (ok, key) = await _queue.TakeAsync(cts.Token);
        ok.Should().BeTrue();
        return key;
    }
}

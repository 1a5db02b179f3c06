using System.Diagnostics;
using System.Threading.Channels;
using Hypercore.MicroVms;
using Hypercore.Store.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// Issue 15, tenth pass: a commit that would carry only background writes (the reconciler's) waits a bounded time for the
/// next request write, so both share one fsync, but only while requests are arriving; a request write never waits.
/// </summary>
[TestFixture]
public sealed class SqliteBackgroundWriteWaitTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(5);

    private TempDatabase _database = null!;

    [SetUp]
    public void SetUp() => _database = new TempDatabase();

    [TearDown]
    public void TearDown() => _database.Dispose();

    [Test]
    public async Task Store_StatusWriteAfterARequest_WaitsForTheNextCreateAndCommitsWithIt()
    {
        await using var store = _database.Open(configure: o =>
        {
            o.BackgroundWriteWait = Long;
            o.BackgroundWriteWaitRecent = TimeSpan.FromMinutes(1);
        });
        var created = await store.CreateAsync(Spec("vm-a")); // a request write: requests are arriving

        var status = store.UpdateStatusAsync(created.Key, created.Status with { Phase = Phase.Provisioning }, created.ResourceVersion);
        await Task.Delay(TimeSpan.FromMilliseconds(300));
        status.IsCompleted.Should().BeFalse("a batch of only background writes waits for a request write while requests arrive");

        var clock = Stopwatch.StartNew();
        var next = store.CreateAsync(Spec("vm-b"));
        await Task.WhenAll(status, next).WaitAsync(TimeSpan.FromSeconds(60));
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(2), "the request write ends the wait at once (the bound is 5 s)");

        (await status).Status.Phase.Should().Be(Phase.Provisioning);
        VersionOf(await next).Should().Be(VersionOf(await status) + 1, "the status write kept its place in the queue");
    }

    [Test]
    public async Task Store_StatusWriteWithNoRequestLately_CommitsWithoutWaiting()
    {
        await using var store = _database.Open(configure: o =>
        {
            o.BackgroundWriteWait = Long;
            o.BackgroundWriteWaitRecent = TimeSpan.FromMilliseconds(50);
        });
        var created = await store.CreateAsync(Spec("vm-a"));
        await Task.Delay(TimeSpan.FromMilliseconds(300)); // idle: no request write lately

        var clock = Stopwatch.StartNew();
        await store.UpdateStatusAsync(created.Key, created.Status with { Phase = Phase.Provisioning }, created.ResourceVersion)
            .WaitAsync(TimeSpan.FromSeconds(60));
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(2), "an idle store's background write does not wait for company");
    }

    [Test]
    public async Task Store_CreatesInARow_NeverWait()
    {
        await using var store = _database.Open(configure: o =>
        {
            o.BackgroundWriteWait = Long;
            o.BackgroundWriteWaitRecent = TimeSpan.FromMinutes(1);
        });
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 10; i++)
        {
            await store.CreateAsync(Spec($"vm-{i}")).WaitAsync(TimeSpan.FromSeconds(60));
        }

        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(4), "a request write commits at once, never waiting (the bound is 5 s)");
    }

    [Test]
    public void Fill_OnlyBackgroundWrites_WaitsForARequestWriteAndTakesItWithWhatQueuedMeanwhile()
    {
        var (wait, queue) = Arrange(Long, TimeSpan.FromMinutes(1));
        var batch = new List<Write>();
        queue.Writer.TryWrite(new Write(false));

        var filling = Task.Factory.StartNew(() => wait.Fill(batch, 512, queue.Reader), TaskCreationOptions.LongRunning);
        Thread.Sleep(200);
        filling.IsCompleted.Should().BeFalse("requests were arriving lately, so the background write waits for one");
        queue.Writer.TryWrite(new Write(false)); // another background write does not end the wait
        Thread.Sleep(100);
        filling.IsCompleted.Should().BeFalse();

        var clock = Stopwatch.StartNew();
        queue.Writer.TryWrite(new Write(true));
        wait.RequestQueued();
        filling.Wait(TimeSpan.FromSeconds(60)).Should().BeTrue();
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(2), "a request write ends the wait at once");

        batch.Select(w => w.IsRequest).Should().Equal(false, false, true);
        wait.Waits.Should().Be(1);
        wait.Joined.Should().Be(1);
    }

    [Test]
    public void Fill_NoRequestWriteComes_ReturnsAtTheBoundWithTheBackgroundWrites()
    {
        var (wait, queue) = Arrange(TimeSpan.FromMilliseconds(300), TimeSpan.FromMinutes(1));
        var batch = new List<Write>();
        queue.Writer.TryWrite(new Write(false));

        var clock = Stopwatch.StartNew();
        var filling = Task.Factory.StartNew(() => wait.Fill(batch, 512, queue.Reader), TaskCreationOptions.LongRunning);
        Thread.Sleep(100);
        queue.Writer.TryWrite(new Write(false));
        filling.Wait(TimeSpan.FromSeconds(60)).Should().BeTrue();

        clock.Elapsed.Should().BeGreaterThanOrEqualTo(TimeSpan.FromMilliseconds(250)).And.BeLessThan(TimeSpan.FromSeconds(3));
        batch.Should().HaveCount(2, "what queued during the wait is taken");
        wait.Waits.Should().Be(1);
        wait.Joined.Should().Be(0);
    }

    [Test]
    public void Fill_ARequestWriteInTheBatch_DoesNotWait()
    {
        var (wait, queue) = Arrange(Long, TimeSpan.FromMinutes(1));
        var batch = new List<Write> { new(false) }; // e.g. a retried background write
        queue.Writer.TryWrite(new Write(true));
        queue.Writer.TryWrite(new Write(false));

        var clock = Stopwatch.StartNew();
        wait.Fill(batch, 512, queue.Reader);

        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(1));
        batch.Should().HaveCount(3);
        wait.Waits.Should().Be(0);
    }

    [Test]
    public void Fill_AFullBatch_DoesNotWait()
    {
        var (wait, queue) = Arrange(Long, TimeSpan.FromMinutes(1));
        var batch = new List<Write>();
        queue.Writer.TryWrite(new Write(false));
        queue.Writer.TryWrite(new Write(false));

        var clock = Stopwatch.StartNew();
        wait.Fill(batch, 2, queue.Reader);

        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(1));
        batch.Should().HaveCount(2);
    }

    [Test]
    public void Fill_NoRequestWriteLately_DoesNotWait()
    {
        var wait = new BackgroundWriteWait(Long, TimeSpan.FromMilliseconds(50));
        var queue = Channel.CreateUnbounded<Write>();
        queue.Writer.TryWrite(new Write(true));
        wait.Fill([], 512, queue.Reader);
        Thread.Sleep(200);

        var batch = new List<Write>();
        queue.Writer.TryWrite(new Write(false));
        var clock = Stopwatch.StartNew();
        wait.Fill(batch, 512, queue.Reader);

        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(1));
        batch.Should().HaveCount(1);
        wait.Waits.Should().Be(0);
    }

    [Test]
    public void Fill_NoRequestWriteEver_DoesNotWait()
    {
        var wait = new BackgroundWriteWait(Long, TimeSpan.FromMinutes(1));
        var queue = Channel.CreateUnbounded<Write>();
        queue.Writer.TryWrite(new Write(false));

        var clock = Stopwatch.StartNew();
        wait.Fill([], 512, queue.Reader);

        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(1), "a store that has had no request write is idle");
        wait.Waits.Should().Be(0);
    }

    /// <summary>A wait that has just taken a request write's batch (so requests are arriving) and an empty queue.</summary>
    private static (BackgroundWriteWait Wait, Channel<Write> Queue) Arrange(TimeSpan bound, TimeSpan recent)
    {
        var wait = new BackgroundWriteWait(bound, recent);
        var queue = Channel.CreateUnbounded<Write>();
        queue.Writer.TryWrite(new Write(true));
        wait.Fill([], 512, queue.Reader);
        return (wait, queue);
    }

    private static long VersionOf(MicroVm vm) => long.Parse(vm.ResourceVersion, System.Globalization.CultureInfo.InvariantCulture);

    private static MicroVmSpec Spec(string id) => new() { Id = id, Kernel = new KernelSpec { Image = "/images/vmlinuz" } };

    private sealed record Write(bool IsRequest) : BackgroundWriteWait.IQueuedWrite;
}

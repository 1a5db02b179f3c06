using Hypercore.Scheduling;

namespace Hypercore.Core.Tests.Scheduling;

/// <summary>Issue 15, tenth pass: the reconciler's dedicated threads (<see cref="BackgroundThreads"/>).</summary>
public class BackgroundThreadsTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Test]
    public async Task Run_AndEveryContinuationOfItsAwaits_StayOnTheBackgroundThreads()
    {
        using var threads = new BackgroundThreads(2, nice: 0, "bg-test");
        var seen = new List<(string? Name, bool Pool)>();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var work = threads.Run(async () =>
        {
            seen.Add((Thread.CurrentThread.Name, Thread.CurrentThread.IsThreadPoolThread));
            await Task.Delay(10);
            seen.Add((Thread.CurrentThread.Name, Thread.CurrentThread.IsThreadPoolThread));
            await gate.Task; // completed from a thread-pool thread below
            seen.Add((Thread.CurrentThread.Name, Thread.CurrentThread.IsThreadPoolThread));
            await Task.Yield();
            seen.Add((Thread.CurrentThread.Name, Thread.CurrentThread.IsThreadPoolThread));
        });
        await Task.Run(async () =>
        {
            await Task.Delay(50);
            gate.SetResult();
        });
        await work.WaitAsync(Patience);

        seen.Should().HaveCount(4).And.OnlyContain(s => s.Name == "bg-test" && !s.Pool);
    }

    [Test]
    public async Task Run_ReportsTheWorksFailure()
    {
        using var threads = new BackgroundThreads(1, nice: 0, "bg-test");

        var work = threads.Run(async () =>
        {
            await Task.Yield();
            throw new InvalidOperationException("boom");
        });

        await FluentActions.Awaiting(() => work.WaitAsync(Patience)).Should().ThrowAsync<InvalidOperationException>().WithMessage("boom");
    }

    private static void RequireLinuxRoot()
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess)
        {
            Assert.Ignore("lowering and putting back thread priorities: Linux, as root");
        }
    }

    private static int? NiceHere() => ThreadNice.Of(ThreadNice.CurrentThreadId());

    [Test]
    public async Task Threads_RunAtTheConfiguredNice()
    {
        RequireLinuxRoot();

        using var threads = new BackgroundThreads(2, nice: 7, "bg-test");
        int? nice = null;
        await threads.Run(() =>
        {
            nice = ThreadNice.Of(ThreadNice.CurrentThreadId());
            return Task.CompletedTask;
        }).WaitAsync(Patience);

        threads.Lowered.Should().Be(2);
        nice.Should().Be(7);
        ThreadNice.Of(ThreadNice.CurrentThreadId()).Should().NotBe(7, "only the background threads were lowered");
    }

    [Test]
    public async Task Threads_AreNotLowered_WhereThePriorityCouldNotBePutBack()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("thread nice values are Linux's");
        }

        // Without root a thread can lower itself but never come back, and everything it starts (a hypervisor) would
        // keep the lower priority: the threads are left as they are.
        using var threads = new BackgroundThreads(1, nice: 7, "bg-test", canRestore: false);
        int? nice = null;
        await threads.Run(() =>
        {
            nice = NiceHere();
            return Task.CompletedTask;
        }).WaitAsync(Patience);

        threads.Lowered.Should().Be(0);
        nice.Should().Be(NiceHere());
    }

    [Test]
    public async Task AThreadStartedFromABackgroundThread_IsPutBack_AfterItsWork()
    {
        RequireLinuxRoot();
        var normal = NiceHere();
        using var threads = new BackgroundThreads(1, nice: 6, "bg-test");
        using var release = new ManualResetEventSlim();
        int tid = 0, inherited = 0;

        // As a thread-pool thread created while a background thread queued work would be: it inherits nice 6.
        await threads.Run(() =>
        {
            var started = new ManualResetEventSlim();
            new Thread(() =>
            {
                tid = ThreadNice.CurrentThreadId();
                inherited = NiceHere() ?? -1;
                started.Set();
                release.Wait();
            }) { IsBackground = true }.Start();
            started.Wait();
            return Task.CompletedTask;
        }).WaitAsync(Patience);
        inherited.Should().Be(6);

        var deadline = DateTime.UtcNow + Patience;
        while (ThreadNice.Of(tid) != normal && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        ThreadNice.Of(tid).Should().Be(normal, "put back within BackgroundThreads.RestoreEvery of the work that started it");
        threads.Restored.Should().BeGreaterThan(0);
        release.Set();
    }

    [Test]
    public async Task AThreadStartedFromABackgroundThread_PutsItselfBack_BeforeItStartsAProcess()
    {
        RequireLinuxRoot();
        var normal = NiceHere();
        using var threads = new BackgroundThreads(1, nice: 6, "bg-test");
        int? before = null, after = null;

        // As HostProcess's launch thread (LongRunning, created by the reconcile pass that starts a hypervisor) does.
        await threads.Run(() =>
        {
            var launch = new Thread(() =>
            {
                before = NiceHere();
                ThreadNice.RestoreInherited();
                after = NiceHere();
            });
            launch.Start();
            launch.Join();
            return Task.CompletedTask;
        }).WaitAsync(Patience);

        before.Should().Be(6);
        after.Should().Be(normal);
    }
}

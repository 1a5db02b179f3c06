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

    [Test]
    public async Task Threads_RunAtTheConfiguredNice()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("thread nice values are Linux's");
        }

        using var threads = new BackgroundThreads(2, nice: 7, "bg-test");
        int? nice = null;
        await threads.Run(() =>
        {
            nice = ThreadNice.Of(ThreadNice.CurrentThreadId());
            return Task.CompletedTask;
        }).WaitAsync(Patience);

        // Raising a thread's own nice value needs no privilege; every thread did it before taking work.
        threads.Lowered.Should().Be(2);
        nice.Should().Be(7);
        ThreadNice.Of(ThreadNice.CurrentThreadId()).Should().NotBe(7, "only the background threads were lowered");
    }
}

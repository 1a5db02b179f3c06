using System.Collections.Concurrent;
using System.Diagnostics;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.Testing;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>Issue 15: hypervisor exits seen by pidfd, for processes that are not this process's children too.</summary>
[TestFixture]
[NonParallelizable]
public sealed class ProcessExitWatchTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private Scratch _scratch = null!;

    [SetUp]
    public void SetUp()
    {
        ProcessExitWatch.Supported.Should().BeTrue("this host has pidfd_open (Linux 5.3, glibc 2.36: Debian 12)");
        _scratch = new Scratch();
    }

    [TearDown]
    public async Task TearDown() => await _scratch.DisposeAsync();

    /// <summary>A detached process (setsid, reparented: not this process's child, like a hypervisor adopted after a restart).</summary>
    private async Task<int> StartSleeperAsync()
    {
        var pid = await HostProcess.StartDetachedAsync("sleep", ["600"], _scratch.Root, Path.Combine(_scratch.Root, "sleep.log"), default);
        _scratch.Track(pid);
        return pid;
    }

    private static int OpenPidfds() => ProcFs.OpenDescriptors(link => link.Contains("pidfd", StringComparison.Ordinal));

    [Test]
    public async Task Watch_DetachedProcessKilledFromOutside_RaisesExitedWithItsUidOnce()
    {
        using var watch = new ProcessExitWatch();
        var exited = new ConcurrentQueue<string>();
        watch.Exited += exited.Enqueue;
        var pid = await StartSleeperAsync();

        watch.Watch("vm-a", pid, HostProcess.StartTicks(pid)!.Value).Should().BeTrue();
        watch.IsWatching("vm-a", pid).Should().BeTrue();
        var sw = Stopwatch.StartNew();
        HostProcess.Signal(pid, HostProcess.SigKill);

        await Eventually.TrueAsync(() => !exited.IsEmpty, Patience, "the exit to be reported");
        TestContext.Progress.WriteLine($"exit reported {sw.Elapsed.TotalMilliseconds:0} ms after SIGKILL");
        await Task.Delay(200);
        exited.Should().Equal("vm-a");
        watch.Count.Should().Be(0);
        watch.IsWatching("vm-a", pid).Should().BeFalse();
    }

    [Test]
    public async Task IsRunning_AskedOfThePidfd_TrueWhileAliveNeverOnceEndedNullWhenNotWatched()
    {
        using var watch = new ProcessExitWatch();
        var pid = await StartSleeperAsync();
        watch.Watch("vm-a", pid, HostProcess.StartTicks(pid)!.Value).Should().BeTrue();

        watch.IsRunning("vm-a", pid).Should().BeTrue();
        watch.IsRunning("vm-a", pid + 1).Should().BeNull("another pid than the watched one");
        watch.IsRunning("vm-b", pid).Should().BeNull("not watched");
        HostProcess.Signal(pid, HostProcess.SigKill);
        // False while the watch thread has not yet dropped it, then null: never "running" once it ended.
        await Eventually.TrueAsync(() => watch.IsRunning("vm-a", pid) is not true, Patience, "the pidfd to tell the process ended");
        await Eventually.TrueAsync(() => watch.Count == 0, Patience, "the watch to drop the ended process");
        watch.IsRunning("vm-a", pid).Should().BeNull();
    }

    [Test]
    public async Task Watch_StartTicksOfAnotherProcess_RefusedAndNoPidfdKept()
    {
        using var watch = new ProcessExitWatch();
        var pid = await StartSleeperAsync();
        var before = OpenPidfds();

        watch.Watch("vm-a", pid, HostProcess.StartTicks(pid)!.Value + 1).Should().BeFalse("the pid names another process than the recorded one");

        watch.Count.Should().Be(0);
        OpenPidfds().Should().Be(before);
    }

    [Test]
    public void Watch_ProcessAlreadyGone_Refused()
    {
        using var watch = new ProcessExitWatch();
        using var gone = Process.Start("true")!;
        gone.WaitForExit();

        watch.Watch("vm-a", gone.Id, 1).Should().BeFalse();
        watch.Count.Should().Be(0);
    }

    [Test]
    public async Task Unwatch_ThenKilled_RaisesNothing()
    {
        using var watch = new ProcessExitWatch();
        var exited = new ConcurrentQueue<string>();
        watch.Exited += exited.Enqueue;
        var stopped = await StartSleeperAsync();
        var crashed = await StartSleeperAsync();
        watch.Watch("stopped", stopped, HostProcess.StartTicks(stopped)!.Value).Should().BeTrue();
        watch.Watch("crashed", crashed, HostProcess.StartTicks(crashed)!.Value).Should().BeTrue();

        watch.Unwatch("stopped");
        HostProcess.Signal(stopped, HostProcess.SigKill);
        await Eventually.TrueAsync(() => !HostProcess.IsAlive(stopped), Patience, "the unwatched process to die");
        HostProcess.Signal(crashed, HostProcess.SigKill);

        await Eventually.TrueAsync(() => !exited.IsEmpty, Patience, "the watched process's exit");
        await Task.Delay(200);
        exited.Should().Equal(["crashed"], "a process stopped on purpose is no crash to report");
    }

    [Test]
    public async Task Watch_TwentyProcessesAllKilled_EachReportedAndNoPidfdLeft()
    {
        var before = OpenPidfds();
        var exited = new ConcurrentDictionary<string, int>();
        var pids = new List<int>();
        using (var watch = new ProcessExitWatch())
        {
            watch.Exited += uid => exited.AddOrUpdate(uid, 1, (_, n) => n + 1);
            for (var i = 0; i < 20; i++)
            {
                var pid = await StartSleeperAsync();
                pids.Add(pid);
                watch.Watch($"vm-{i}", pid, HostProcess.StartTicks(pid)!.Value).Should().BeTrue();
            }

            watch.Count.Should().Be(20);
            OpenPidfds().Should().Be(before + 20);
            foreach (var pid in pids)
            {
                HostProcess.Signal(pid, HostProcess.SigKill);
            }

            await Eventually.TrueAsync(() => exited.Count == 20, Patience, "all 20 exits");
            await Task.Delay(200);
            exited.Values.Should().AllBeEquivalentTo(1, "each exit is reported once");
            watch.Count.Should().Be(0);
        }

        OpenPidfds().Should().Be(before);
    }

    [Test]
    public async Task Dispose_WithProcessesStillWatched_ClosesEveryPidfdAndRaisesNothing()
    {
        var before = OpenPidfds();
        var exited = new ConcurrentQueue<string>();
        var watch = new ProcessExitWatch();
        watch.Exited += exited.Enqueue;
        var pid = await StartSleeperAsync();
        watch.Watch("vm-a", pid, HostProcess.StartTicks(pid)!.Value).Should().BeTrue();

        watch.Dispose();
        HostProcess.Signal(pid, HostProcess.SigKill);
        await Eventually.TrueAsync(() => !HostProcess.IsAlive(pid), Patience, "the process to die");
        await Task.Delay(200);

        exited.Should().BeEmpty();
        OpenPidfds().Should().Be(before);
        watch.Watch("vm-b", await StartSleeperAsync(), 0).Should().BeFalse("a disposed watch takes nothing");
    }
}

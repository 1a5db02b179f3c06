using System.Collections.Concurrent;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Hypercore.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Firecracker;

/// <summary>
/// Issue 15 (tidy5): the path of a host without pidfd_open (Linux before 5.3, glibc before 2.36), forced on this one
/// with an exit watch that uses no pidfd: nothing is watched or reported, and the driver's inspection (the poll) still
/// finds a hypervisor killed from outside, from /proc, as before the exit watch existed. Against the firecracker
/// stand-in: the same VmmDriver code for every VMM.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class FirecrackerNoPidfdTests
{
    private Scratch _scratch = null!;
    private FirecrackerDriver? _driver;

    [SetUp]
    public void SetUp() => _scratch = new Scratch();

    [TearDown]
    public async Task TearDown()
    {
        _driver?.Dispose();
        await _scratch.DisposeAsync();
    }

    private FirecrackerDriver NewDriver() => _driver = new FirecrackerDriver(Options.Create(new FirecrackerOptions
    {
        BinaryPath = StandIns.Firecracker,
        RuntimeDirectory = _scratch.RuntimeDirectory,
        RequireKvm = false,
        StartTimeout = TimeSpan.FromSeconds(60),
    }), TimeProvider.System, NullLogger<FirecrackerDriver>.Instance)
    {
        ExitWatch = new ProcessExitWatch(pidfd: false),
    };

    private static int OpenPidfds() => ProcFs.OpenDescriptors(link => link.Contains("pidfd", StringComparison.Ordinal));

    [Test]
    public async Task NoPidfd_KilledFromOutside_NothingReported_InspectionStillFindsTheCrash()
    {
        var pidfds = OpenPidfds();
        var driver = NewDriver();
        var changes = new ConcurrentQueue<string>();
        driver.LiveStateChanged += changes.Enqueue;
        var vm = _scratch.Vm("fc-nopidfd");
        var started = await driver.StartAsync(vm);

        driver.WatchedProcesses.Should().Be(0);
        driver.IsWatchingExit(vm.Uid, started.Pid!.Value).Should().BeFalse();
        OpenPidfds().Should().Be(pidfds, "no pidfd is opened on this path");
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running, "alive by its /proc entry");

        HostProcess.Signal(started.Pid.Value, HostProcess.SigKill);
        await Eventually.TrueAsync(() => !HostProcess.IsAlive(started.Pid.Value), TimeSpan.FromSeconds(30), "the stand-in to end");
        var live = await driver.InspectAsync(vm);

        live.State.Should().Be(LiveState.Exited);
        live.Exit.Should().Be(ExitKind.Crashed);
        changes.Should().BeEmpty("without pidfds the end is found by the poll, not reported");
    }

    [Test]
    public async Task NoPidfd_StopAndCleanup_LeaveNoProcessOrDirectory()
    {
        var driver = NewDriver();
        var stopped = _scratch.Vm("fc-nopidfd-stop");
        var deleted = _scratch.Vm("fc-nopidfd-delete");
        var a = await driver.StartAsync(stopped);
        var b = await driver.StartAsync(deleted);

        await driver.StopAsync(stopped, TimeSpan.FromSeconds(10));
        await driver.CleanupAsync(deleted);

        HostProcess.IsAlive(a.Pid!.Value).Should().BeFalse();
        HostProcess.IsAlive(b.Pid!.Value).Should().BeFalse();
        (await driver.InspectAsync(stopped)).State.Should().NotBe(LiveState.Running);
        Directory.Exists(_scratch.VmDirectory(deleted)).Should().BeFalse();
        driver.WatchedProcesses.Should().Be(0);
    }

    [Test]
    public async Task Watch_WithoutPidfd_WatchesNothing()
    {
        using var watch = new ProcessExitWatch(pidfd: false);
        var pid = await HostProcess.StartDetachedAsync("sleep", ["600"], _scratch.Root, Path.Combine(_scratch.Root, "sleep.log"), default);
        _scratch.Track(pid);

        watch.Watch("vm-a", pid, HostProcess.StartTicks(pid)!.Value).Should().BeFalse();
        watch.Count.Should().Be(0);
        watch.IsRunning("vm-a", pid).Should().BeNull("not watched: the caller reads /proc");
        using var real = new ProcessExitWatch();
        real.Watch("vm-a", pid, HostProcess.StartTicks(pid)!.Value).Should().BeTrue("the default watch on this host uses pidfds");
    }
}

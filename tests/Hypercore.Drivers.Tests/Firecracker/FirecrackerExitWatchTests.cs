using System.Collections.Concurrent;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Firecracker;

/// <summary>
/// Issue 15: the shared VMM skeleton watches every hypervisor it starts or adopts by pidfd and reports its end at once
/// (<see cref="ILiveStateChanges"/>), against the firecracker stand-in (the same code path for every VmmDriver).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class FirecrackerExitWatchTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private Scratch _scratch = null!;
    private readonly List<FirecrackerDriver> _drivers = [];

    [SetUp]
    public void SetUp() => _scratch = new Scratch();

    [TearDown]
    public async Task TearDown()
    {
        foreach (var driver in _drivers)
        {
            driver.Dispose();
        }

        _drivers.Clear();
        await _scratch.DisposeAsync();
    }

    private FirecrackerDriver NewDriver()
    {
        var driver = new FirecrackerDriver(Options.Create(new FirecrackerOptions
        {
            BinaryPath = StandIns.Firecracker,
            RuntimeDirectory = _scratch.RuntimeDirectory,
            RequireKvm = false,
            StartTimeout = TimeSpan.FromSeconds(60),
        }), TimeProvider.System, NullLogger<FirecrackerDriver>.Instance);
        _drivers.Add(driver);
        return driver;
    }

    private static ConcurrentQueue<string> Changes(FirecrackerDriver driver)
    {
        var changes = new ConcurrentQueue<string>();
        driver.LiveStateChanged += changes.Enqueue;
        return changes;
    }

    [Test]
    public async Task Exit_HypervisorKilledFromOutside_ReportedAtOnceThenInspectSaysCrashed()
    {
        var driver = NewDriver();
        var changes = Changes(driver);
        var vm = _scratch.Vm("fc-exit");
        var started = await driver.StartAsync(vm);
        driver.IsWatchingExit(vm.Uid, started.Pid!.Value).Should().BeTrue("a started hypervisor is watched from its launch on");

        HostProcess.Signal(started.Pid.Value, HostProcess.SigKill);

        await Eventually.TrueAsync(() => !changes.IsEmpty, Patience, "the driver to report the hypervisor's end");
        changes.Should().Equal(vm.Uid);
        var live = await driver.InspectAsync(vm);
        live.State.Should().Be(LiveState.Exited);
        live.Exit.Should().Be(ExitKind.Crashed);
        driver.WatchedProcesses.Should().Be(0);
    }

    [Test]
    public async Task Exit_StopAndCleanupOnPurpose_ReportNothingAndLeaveNothingWatched()
    {
        var driver = NewDriver();
        var changes = Changes(driver);
        var stopped = _scratch.Vm("fc-stop");
        var deleted = _scratch.Vm("fc-delete");
        var a = await driver.StartAsync(stopped);
        var b = await driver.StartAsync(deleted);
        driver.WatchedProcesses.Should().Be(2);

        await driver.StopAsync(stopped, TimeSpan.FromSeconds(10));
        await driver.CleanupAsync(deleted);

        HostProcess.IsAlive(a.Pid!.Value).Should().BeFalse();
        HostProcess.IsAlive(b.Pid!.Value).Should().BeFalse();
        driver.WatchedProcesses.Should().Be(0);
        await Task.Delay(500);
        changes.Should().BeEmpty("a stop or delete on purpose is no crash to report");
        Directory.Exists(_scratch.VmDirectory(deleted)).Should().BeFalse();
    }

    [Test]
    public async Task Exit_AdoptedByAFreshDriverInstance_WatchedFromItsFirstInspection()
    {
        var vm = _scratch.Vm("fc-adopt");
        var started = await NewDriver().StartAsync(vm);
        var fresh = NewDriver(); // a daemon restart: the hypervisor is not this instance's, nor this process's child
        var changes = Changes(fresh);
        fresh.IsWatchingExit(vm.Uid, started.Pid!.Value).Should().BeFalse();

        (await fresh.InspectAsync(vm)).State.Should().Be(LiveState.Running);
        fresh.IsWatchingExit(vm.Uid, started.Pid.Value).Should().BeTrue();
        HostProcess.Signal(started.Pid.Value, HostProcess.SigKill);

        await Eventually.TrueAsync(() => !changes.IsEmpty, Patience, "the fresh driver to report the adopted hypervisor's end");
        changes.Should().Equal(vm.Uid);
        (await fresh.InspectAsync(vm)).Exit.Should().Be(ExitKind.Crashed);
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using Hypercore.Drivers.Vmm;
using Hypercore.Drivers.Vmm.Qmp;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>
/// Issue 15 (idle cost of running VMs), against real TCG guests: status polls use one kept QMP session per VM on a
/// monitor socket of its own, a QEMU's end is reported by pidfd at once, and nothing is left behind.
/// </summary>
[NonParallelizable]
public sealed class QemuStatusSessionTests
{
    private QemuTestBed _bed = null!;

    [SetUp]
    public void SetUp() => _bed = new QemuTestBed();

    [TearDown]
    public void TearDown() => _bed.Dispose();

    private string Socket(MicroVm vm, string name) => Path.Combine(_bed.VmDir(vm), name);

    private static async Task<string> OutsideQmpAsync(string socket, string command)
    {
        await using var qmp = await QmpClient.ConnectAsync(socket, TimeProvider.System, TimeSpan.FromSeconds(30), CancellationToken.None);
        if (command != "query-status")
        {
            await qmp.ExecuteAsync(command, null, CancellationToken.None);
        }

        return await qmp.QueryStatusAsync(CancellationToken.None);
    }

    /// <summary>The daemon's own sockets and pidfds (what a leak would add to).</summary>
    private static int OwnSocketsAndPidfds() => Directory.EnumerateFileSystemEntries("/proc/self/fd").Count(fd =>
    {
        try
        {
            var target = new FileInfo(fd).LinkTarget ?? "";
            return target.StartsWith("socket:", StringComparison.Ordinal) || target.Contains("pidfd", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    });

    [Test]
    public async Task Inspect_Repeatedly_UsesOneKeptSessionAndLeavesTheMainSocketFreeForOthers()
    {
        var driver = _bed.Driver();
        var vm = QemuTestBed.Vm("kept");
        await driver.StartAsync(vm);
        File.Exists(Socket(vm, "qmps.sock")).Should().BeTrue("QEMU serves the status monitor beside qmp.sock");

        for (var i = 0; i < 5; i++)
        {
            (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
            driver.KeptStatusSessions.Should().Be(1);
        }

        // The kept session is on qmps.sock: an operator's client (and the driver's own control sessions) still get qmp.sock.
        (await OutsideQmpAsync(Socket(vm, "qmp.sock"), "query-status")).Should().Be("running");
        await driver.PauseAsync(vm);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Paused);
        await driver.ResumeAsync(vm);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
        driver.KeptStatusSessions.Should().Be(1);
    }

    [Test]
    public async Task Inspect_GuestPausedFromOutside_SeenOnTheKeptSession()
    {
        var driver = _bed.Driver();
        var vm = QemuTestBed.Vm("outside");
        await driver.StartAsync(vm);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);

        (await OutsideQmpAsync(Socket(vm, "qmp.sock"), "stop")).Should().Be("paused");

        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Paused, "the kept session asks QEMU each time; nothing is cached");
        (await OutsideQmpAsync(Socket(vm, "qmp.sock"), "cont")).Should().Be("running");
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
    }

    [Test]
    public async Task Exit_QemuKilledFromOutside_ReportedAtOnceWithoutAPollAndTheSessionClosed()
    {
        var driver = _bed.Driver();
        var changes = new ConcurrentQueue<string>();
        driver.LiveStateChanged += changes.Enqueue;
        var vm = QemuTestBed.Vm("killed");
        var info = await driver.StartAsync(vm);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
        driver.KeptStatusSessions.Should().Be(1);

        var sw = Stopwatch.StartNew();
        Process.GetProcessById(info.Pid!.Value).Kill(); // SIGKILL, from outside the driver

        await _bed.WaitUntilAsync(() => !changes.IsEmpty, "the driver to report QEMU's end");
        TestContext.Progress.WriteLine($"QEMU's end reported {sw.Elapsed.TotalMilliseconds:0} ms after SIGKILL (no inspection in between)");
        changes.Should().Equal(vm.Uid);
        await _bed.WaitUntilAsync(() => driver.KeptStatusSessions == 0, "the kept session to be closed");
        var after = await driver.InspectAsync(vm);
        after.State.Should().Be(LiveState.Exited);
        after.Exit.Should().Be(ExitKind.Crashed);
    }

    [Test]
    public async Task Adopt_FreshDriverInstance_KeepsItsOwnSessionAndWatchesTheExit()
    {
        var first = _bed.Driver();
        var vm = QemuTestBed.Vm("adopted");
        var info = await first.StartAsync(vm);
        (await first.InspectAsync(vm)).State.Should().Be(LiveState.Running);
        first.Dispose(); // the old daemon is gone: its session and pidfd with it

        var restarted = _bed.Driver();
        var changes = new ConcurrentQueue<string>();
        restarted.LiveStateChanged += changes.Enqueue;
        (await restarted.ListAsync()).Should().ContainSingle().Which.State.Should().Be(LiveState.Running);
        restarted.KeptStatusSessions.Should().Be(1);
        restarted.IsWatchingExit(vm.Uid, info.Pid!.Value).Should().BeTrue();

        Process.GetProcessById(info.Pid.Value).Kill();

        await _bed.WaitUntilAsync(() => !changes.IsEmpty, "the fresh driver to report the adopted QEMU's end");
        (await restarted.InspectAsync(vm)).Exit.Should().Be(ExitKind.Crashed);
    }

    [Test]
    public async Task Inspect_StatusMonitorHeldByAnotherClient_FallsBackToTheMainSocketAndStaysRunning()
    {
        var driver = _bed.Driver(o => o.QmpTimeout = TimeSpan.FromMilliseconds(500));
        var vm = QemuTestBed.Vm("held");
        await driver.StartAsync(vm);
        // Another client on qmps.sock (e.g. a second driver instance in this process): QEMU greets only one at a time.
        await using (var other = await QmpClient.ConnectAsync(Socket(vm, "qmps.sock"), TimeProvider.System, TimeSpan.FromSeconds(30), CancellationToken.None))
        {
            var held = await driver.InspectAsync(vm);

            held.State.Should().Be(LiveState.Running, "a status monitor that does not answer falls back to a session on qmp.sock");
            held.Detail.Should().NotContain("unreachable");
            driver.KeptStatusSessions.Should().Be(0);
            (await other.QueryStatusAsync(CancellationToken.None)).Should().Be("running");
        }

        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
    }

    [Test]
    public async Task Cleanup_AfterPolls_LeavesNoProcessSocketFileOrDescriptor()
    {
        var driver = _bed.Driver();
        var warm = QemuTestBed.Vm("warm"); // the first start opens lasting descriptors of the runtime's own (epoll, ...)
        await driver.StartAsync(warm);
        await driver.CleanupAsync(warm);
        var before = OwnSocketsAndPidfds();
        var vm = QemuTestBed.Vm("clean");
        var info = await driver.StartAsync(vm);
        for (var i = 0; i < 3; i++)
        {
            await driver.InspectAsync(vm);
        }

        OwnSocketsAndPidfds().Should().BeGreaterThanOrEqualTo(before + 2, "a kept session and a pidfd while it runs");

        await driver.CleanupAsync(vm);

        QemuTestBed.ProcessGone(info.Pid!.Value).Should().BeTrue();
        Directory.Exists(_bed.VmDir(vm)).Should().BeFalse();
        driver.WatchedProcesses.Should().Be(0);
        await _bed.WaitUntilAsync(() => driver.KeptStatusSessions == 0 && OwnSocketsAndPidfds() <= before, "the session and pidfd to be closed");
        OwnSocketsAndPidfds().Should().Be(before);
    }

    [Test]
    public async Task Stop_ThenStartAgain_NoStaleStatusSocketAndANewSession()
    {
        var driver = _bed.Driver();
        var vm = QemuTestBed.Vm("restart");
        var first = await driver.StartAsync(vm);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);

        await driver.StopAsync(vm, TimeSpan.Zero);
        File.Exists(Socket(vm, "qmps.sock")).Should().BeFalse();
        File.Exists(Socket(vm, "qmp.sock")).Should().BeFalse();
        await _bed.WaitUntilAsync(() => driver.KeptStatusSessions == 0, "the stopped VM's session to be closed");

        var second = await driver.StartAsync(vm);
        second.Pid.Should().NotBe(first.Pid);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
        driver.KeptStatusSessions.Should().Be(1);
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using Hypercore.Drivers.Vmm.Qmp;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>
/// Issue 15 (idle4), against real TCG guests: QEMU's run-state events on the kept status session are reported as
/// live-state changes at once (no inspection in between), and the session stays open for the next poll.
/// </summary>
[NonParallelizable]
public sealed class QemuStatusEventTests
{
    private QemuTestBed _bed = null!;

    [SetUp]
    public void SetUp() => _bed = new QemuTestBed();

    [TearDown]
    public void TearDown() => _bed.Dispose();

    private string MainSocket(MicroVm vm) => Path.Combine(_bed.VmDir(vm), "qmp.sock");

    private static async Task OutsideAsync(string socket, string command)
    {
        await using var qmp = await QmpClient.ConnectAsync(socket, TimeProvider.System, TimeSpan.FromSeconds(30), CancellationToken.None);
        await qmp.ExecuteAsync(command, null, CancellationToken.None);
    }

    [Test]
    public async Task Event_PauseAndResumeFromOutside_ReportedWithoutAPollAndTheSessionKept()
    {
        var driver = _bed.Driver();
        var vm = QemuTestBed.Vm("paused");
        await driver.StartAsync(vm);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running); // the first poll opens the kept session
        var changes = new ConcurrentQueue<string>();
        driver.LiveStateChanged += changes.Enqueue;

        var sw = Stopwatch.StartNew();
        await OutsideAsync(MainSocket(vm), "stop"); // an operator's client on qmp.sock, not the driver

        await _bed.WaitUntilAsync(() => !changes.IsEmpty, "the pause to be reported");
        TestContext.Progress.WriteLine($"pause from outside reported {sw.Elapsed.TotalMilliseconds:0} ms after the stop command");
        changes.ToArray().Should().AllBe(vm.Uid); // a snapshot: AllBe counts the queue, then reads it again, and a second event may land in between
        driver.KeptStatusSessions.Should().Be(1, "an event is no reason to close the session");
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Paused);

        var before = changes.Count;
        await OutsideAsync(MainSocket(vm), "cont");
        await _bed.WaitUntilAsync(() => changes.Count > before, "the resume to be reported");
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
        driver.KeptStatusSessions.Should().Be(1);
    }

    [Test]
    public async Task Event_GuestResetUnderNoReboot_ReportedWithoutAPollAsAPowerOffWhileQemuLives()
    {
        var driver = _bed.Driver();
        var vm = QemuTestBed.Vm("reset");
        var info = await driver.StartAsync(vm);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
        var changes = new ConcurrentQueue<string>();
        driver.LiveStateChanged += changes.Enqueue;

        // -no-reboot -no-shutdown: a reset ends the guest and QEMU stays, in status "shutdown" (no process exit to see).
        await OutsideAsync(MainSocket(vm), "system_reset");

        await _bed.WaitUntilAsync(() => !changes.IsEmpty, "the guest's end to be reported");
        changes.ToArray().Should().AllBe(vm.Uid); // a snapshot: AllBe counts the queue, then reads it again, and a second event may land in between
        QemuTestBed.ProcessGone(info.Pid!.Value).Should().BeFalse("QEMU is kept after the guest's end: only the event tells");
        var after = await driver.InspectAsync(vm);
        after.State.Should().Be(LiveState.Exited);
        after.Exit.Should().Be(ExitKind.GuestShutdown);
    }

    [Test]
    public async Task Event_DriversOwnPause_AlsoReported_AndStopLeavesNoSession()
    {
        var driver = _bed.Driver();
        var vm = QemuTestBed.Vm("own");
        await driver.StartAsync(vm);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
        var changes = new ConcurrentQueue<string>();
        driver.LiveStateChanged += changes.Enqueue;

        await driver.PauseAsync(vm);

        await _bed.WaitUntilAsync(() => !changes.IsEmpty, "the pause to be reported");
        await driver.StopAsync(vm, TimeSpan.Zero);
        await _bed.WaitUntilAsync(() => driver.KeptStatusSessions == 0, "the stopped VM's session to be closed");
        File.Exists(Path.Combine(_bed.VmDir(vm), "qmps.sock")).Should().BeFalse();
    }

    [Test]
    public void RunStateEvents_AreTheOnesThatChangeWhatQueryStatusAnswers()
    {
        QemuDriver.RunStateEvents.Should().Contain(["STOP", "RESUME", "SHUTDOWN", "RESET", "GUEST_PANICKED"]);
        QemuDriver.RunStateEvents.Should().NotContain(["RTC_CHANGE", "NIC_RX_FILTER_CHANGED", "POWERDOWN"]);
    }
}

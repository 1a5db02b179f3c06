using System.Collections.Concurrent;
using System.Diagnostics;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>
/// Issue 15 (tidy5), against real TCG guests: the QEMU driver on the path of a host without pidfd_open (forced with
/// an exit watch that uses no pidfd). Nothing watches the process: a QEMU killed from outside is found by the poll
/// (from /proc, as before the exit watch), which also drops its kept status session; cleanup leaves no socket or
/// descriptor behind.
/// </summary>
[NonParallelizable]
public sealed class QemuNoPidfdTests
{
    private QemuTestBed _bed = null!;

    [SetUp]
    public void SetUp() => _bed = new QemuTestBed();

    [TearDown]
    public void TearDown() => _bed.Dispose();

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
    public async Task NoPidfd_QemuKilledFromOutside_FoundByThePollWhichDropsTheSession_CleanupLeavesNoDescriptor()
    {
        var driver = _bed.Driver(pidfd: false);
        var warm = QemuTestBed.Vm("warm"); // the first start opens lasting descriptors of the runtime's own (epoll, ...)
        await driver.StartAsync(warm);
        await driver.CleanupAsync(warm);
        await _bed.WaitUntilAsync(() => driver.KeptStatusSessions == 0, "the warm-up VM's session to be closed");
        var before = OwnSocketsAndPidfds();
        var changes = new ConcurrentQueue<string>();
        driver.LiveStateChanged += changes.Enqueue;

        var vm = QemuTestBed.Vm("nopidfd");
        var info = await driver.StartAsync(vm);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
        driver.WatchedProcesses.Should().Be(0, "no pidfd on this path");
        driver.KeptStatusSessions.Should().Be(1, "the kept status session does not depend on pidfds");

        Process.GetProcessById(info.Pid!.Value).Kill(); // SIGKILL, from outside the driver
        await _bed.WaitUntilAsync(() => QemuTestBed.ProcessGone(info.Pid.Value), "QEMU to be gone");
        var after = await driver.InspectAsync(vm);
        after.State.Should().Be(LiveState.Exited);
        after.Exit.Should().Be(ExitKind.Crashed);
        changes.Should().BeEmpty("without pidfds the end is found by the poll, not reported");
        driver.KeptStatusSessions.Should().Be(0, "the poll that found QEMU gone dropped its kept session");

        await driver.CleanupAsync(vm);
        Directory.Exists(_bed.VmDir(vm)).Should().BeFalse();
        await _bed.WaitUntilAsync(() => driver.KeptStatusSessions == 0 && OwnSocketsAndPidfds() <= before, "the session to be closed");
        OwnSocketsAndPidfds().Should().Be(before);
    }
}

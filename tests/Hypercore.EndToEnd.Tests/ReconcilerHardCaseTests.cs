using System.Diagnostics;
using System.Globalization;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// The reconciler's hard cases through the real vistarad, vis and QEMU under TCG: frozen hypervisors (kill -STOP),
/// a daemon restart while they are frozen, and a deletion that finishes before vis's watch is set up. The daemon
/// runs with only 4 workers, so 4 frozen VMs would hold every worker if an inspection could hang.
/// </summary>
[NonParallelizable]
public sealed class ReconcilerHardCaseTests
{
    private Node? _node;
    private readonly List<string> _vms = [];
    private readonly List<int> _stopped = [];

    private Node Node => _node ?? throw new InvalidOperationException("no node");

    [OneTimeSetUp]
    public async Task StartNode() => _node = await Node.StartAsync(_ =>
        ["--reconcile-workers", "4", "--inspect-timeout", "2s", "--unresponsive-after", "15s"]);

    [OneTimeTearDown]
    public async Task StopNode()
    {
        if (_node is not null)
        {
            await _node.DisposeAsync();
        }
    }

    [TearDown]
    public async Task DeleteVms()
    {
        foreach (var pid in _stopped.Where(ProcFs.IsAlive))
        {
            Signal("CONT", pid); // a frozen QEMU still left would only slow its deletion down
        }

        foreach (var id in _vms)
        {
            await Node.ForceDeleteAsync("default", id);
        }

        _vms.Clear();
        _stopped.Clear();
    }

    private async Task<VmView> RunAsync(string id, params string[] more)
    {
        _vms.Add(id);
        var result = await Node.VisAsync(["run", "--name", id, "-o", "json", "--timeout", "3m", .. more]);
        result.ExitCode.Should().Be(0, result.ToString());
        return VmView.Parse(result.Stdout);
    }

    private static void Signal(string signal, int pid)
    {
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString(CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
    }

    [Test]
    public async Task FourFrozenQemus_AreKilledAndRestartedByPolicy_WhileAFifthVmIsCreatedAndDeleted_AcrossADaemonRestart()
    {
        var frozen = new List<VmView>
        {
            await RunAsync("hc-never", "--restart-policy", "Never"),
            await RunAsync("hc-always-1"),
            await RunAsync("hc-always-2", "--restart-policy", "OnFailure"),
            await RunAsync("hc-always-3"),
        };
        foreach (var vm in frozen)
        {
            Signal("STOP", vm.Pid);
            _stopped.Add(vm.Pid);
        }

        // A daemon restart while they are frozen: adoption must not hold up the new daemon's work.
        await Node.KillDaemonAsync();
        await Node.StartDaemonAsync();

        var clock = Stopwatch.StartNew();
        var fifth = await RunAsync("hc-fifth");
        var created = clock.Elapsed;
        var delete = await Node.VisAsync("delete", "hc-fifth", "--wait", "--timeout", "2m");
        delete.ExitCode.Should().Be(0, delete.ToString());
        var deleted = clock.Elapsed;
        _vms.Remove("hc-fifth");
        ProcFs.IsAlive(fifth.Pid).Should().BeFalse("delete ends the fifth VM's QEMU");

        var never = await Node.WaitAsync("default", "hc-never", v => v.Phase == "Failed", "the frozen VM with restartPolicy Never to be left Failed");
        never.Condition("Ready")!.Value.Reason.Should().Be("Unresponsive");
        never.Condition("Unresponsive")!.Value.Status.Should().Be("True");
        ProcFs.IsAlive(frozen[0].Pid).Should().BeFalse("an unresponsive hypervisor is killed even when it is not restarted");

        foreach (var old in frozen.Skip(1))
        {
            var back = await Node.WaitAsync("default", old.Id, v => v.Phase == "Running" && v.Pid > 0 && v.Pid != old.Pid, "a restarted QEMU");
            back.RestartCount.Should().Be(1);
            back.Condition("Unresponsive").Should().NotBeNull("True while it was frozen, False once the new QEMU answers");
            Node.Daemon.Stderr.Should().Contain($"default/{old.Id}: unresponsive: the hypervisor has not answered for");
            ProcFs.IsAlive(old.Pid).Should().BeFalse();
        }

        TestContext.Progress.WriteLine(
            $"[measure] with 4 frozen QEMUs and 4 workers: fifth VM Running after {created.TotalSeconds:0.0} s, deleted after {deleted.TotalSeconds:0.0} s");
    }

    [Test]
    public async Task DeleteWait_DeletionFinishesAlmostAtOnce_VisReturnsInsteadOfWaitingForAnEventThatNeverComes()
    {
        // A VM whose kernel does not exist fails at once and has no process, so its deletion takes milliseconds: often
        // less than vis needs to set up its watch after sending Delete.
        for (var i = 0; i < 5; i++)
        {
            var id = $"hc-quick-{i}";
            _vms.Add(id);
            var run = await Node.VisAsync("run", "--name", id, "--image", Path.Combine(Node.Root, "nonexistent", "vmlinuz"), "--no-wait");
            run.ExitCode.Should().Be(0, run.ToString());
            await Node.WaitAsync("default", id, v => v.Phase == "Failed", "the start to fail");

            var delete = await Node.VisAsync("delete", id, "--wait", "--timeout", "60s");

            delete.ExitCode.Should().Be(0, delete.ToString());
            delete.Stdout.Should().Contain("deleted");
            (await Node.TryGetOverHttpAsync("default", id)).Should().BeNull();
        }
    }
}

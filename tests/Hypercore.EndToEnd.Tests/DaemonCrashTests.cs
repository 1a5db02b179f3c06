using System.Diagnostics;
using System.Text.RegularExpressions;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// kill -9 of the daemon while a VM runs: the VM keeps running (QEMU is daemonized) and the next daemon on the same
/// state dir adopts it by uid instead of booting it again. Its own node, because the test kills the daemon.
/// </summary>
[NonParallelizable]
public sealed class DaemonCrashTests
{
    private Node? _node;

    [SetUp]
    public async Task StartNode() => _node = await Node.StartAsync();

    [TearDown]
    public async Task StopNode()
    {
        if (_node is not null)
        {
            await _node.DisposeAsync();
        }
    }

    [Test]
    public async Task DaemonKilled9_NextDaemonAdoptsTheRunningVm_SamePidNotRebooted()
    {
        var node = _node!;
        var run = await node.VisAsync("run", "--name", "e2e-adopt", "-o", "json", "--timeout", "2m");
        run.ExitCode.Should().Be(0, run.ToString());
        var vm = VmView.Parse(run.Stdout);
        vm.Phase.Should().Be("Running");
        var startTime = ProcFs.StartTime(vm.Pid);
        startTime.Should().NotBeNull();
        await Node.WaitForGuestReadyAsync(vm.ConsoleLogPath, Node.Patience);

        await node.KillDaemonAsync();
        ProcFs.IsAlive(vm.Pid).Should().BeTrue("the VM outlives its daemon");

        var clock = Stopwatch.StartNew();
        await node.StartDaemonAsync();
        await node.Daemon.WaitForLogAsync($"default/e2e-adopt: adopted running qemu instance (pid {vm.Pid}", Node.Patience);
        var adoptedAfter = clock.Elapsed;

        // "Not restarted" can only be seen over time: watch it across several of the reconciler's polls (2 s).
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(5))
        {
            var seen = await node.TryGetOverHttpAsync("default", "e2e-adopt");
            seen.Should().NotBeNull();
            seen!.Phase.Should().Be("Running");
            seen.Pid.Should().Be(vm.Pid);
            await Task.Delay(250);
        }

        var adopted = await node.GetAsync("e2e-adopt");
        adopted.Phase.Should().Be("Running");
        adopted.Uid.Should().Be(vm.Uid);
        adopted.Pid.Should().Be(vm.Pid, "the running QEMU is adopted, not restarted");
        adopted.RestartCount.Should().Be(vm.RestartCount);
        ProcFs.StartTime(vm.Pid).Should().Be(startTime, "the same process, not a new one with a recycled pid");

        var logs = await node.VisAsync("logs", "e2e-adopt");
        logs.ExitCode.Should().Be(0, logs.ToString());
        Regex.Matches(logs.Stdout, "Linux version").Should().HaveCount(1, "the guest booted once");
        Regex.Matches(logs.Stdout, GuestImage.ReadyLine).Should().HaveCount(1);
        node.Daemon.Stderr.Should().NotContain("default/e2e-adopt: started");
        TestContext.Progress.WriteLine($"[measure] restarted daemon -> VM adopted: {adoptedAfter.TotalSeconds:0.00} s");
    }
}

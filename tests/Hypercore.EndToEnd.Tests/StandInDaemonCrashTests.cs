using System.Diagnostics;
using System.Text.RegularExpressions;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// kill -9 of a daemon running a firecracker and a cloud-hypervisor VM (the stand-ins): the VMMs keep running (they
/// were started detached) and the next daemon on the same state dir and flags adopts both by uid, same processes,
/// nothing booted again. Its own node, because the test kills the daemon.
/// </summary>
[NonParallelizable]
public sealed class StandInDaemonCrashTests
{
    private Node? _node;

    [SetUp]
    public async Task StartNode()
    {
        _node = await Node.StartAsync(_ => StandInNode.DaemonArgs);
    }

    [TearDown]
    public async Task StopNode()
    {
        if (_node is not null)
        {
            await _node.DisposeAsync();
        }
    }

    [Test]
    public async Task DaemonKilled9_NextDaemonAdoptsBothVmms_SamePidsNotRestarted()
    {
        var node = _node!;
        var vms = new List<(string Provider, string Id, VmView Vm, long? StartTime)>();
        foreach (var provider in new[] { "firecracker", "cloud-hypervisor" })
        {
            var id = StandInNode.Short(provider) + "-adopt";
            var vm = await StandInNode.RunAsync(node, provider, id);
            await Node.WaitForGuestReadyAsync(vm.ConsoleLogPath, Node.Patience);
            vms.Add((provider, id, vm, ProcFs.StartTime(vm.Pid)));
        }

        await node.KillDaemonAsync();
        foreach (var (provider, _, vm, _) in vms)
        {
            ProcFs.IsAlive(vm.Pid).Should().BeTrue($"the {provider} VMM outlives its daemon");
        }

        var clock = Stopwatch.StartNew();
        await node.StartDaemonAsync();
        foreach (var (provider, id, vm, _) in vms)
        {
            await node.Daemon.WaitForLogAsync($"default/{id}: adopted running {provider} instance (pid {vm.Pid}, Running)", Node.Patience);
        }

        var adoptedAfter = clock.Elapsed;

        // "Not restarted" can only be seen over time: watch across several of the reconciler's polls (2 s).
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(5))
        {
            foreach (var (_, id, vm, _) in vms)
            {
                var seen = await node.TryGetOverHttpAsync("default", id);
                seen!.Phase.Should().Be("Running");
                seen.Pid.Should().Be(vm.Pid);
            }

            await Task.Delay(250);
        }

        foreach (var (provider, id, vm, startTime) in vms)
        {
            var adopted = await node.GetAsync(id);
            adopted.Uid.Should().Be(vm.Uid);
            adopted.Pid.Should().Be(vm.Pid, "the running VMM is adopted, not restarted");
            adopted.RestartCount.Should().Be(0);
            ProcFs.StartTime(vm.Pid).Should().Be(startTime, "the same process, not a new one with a recycled pid");
            var socket = Path.Combine(node.RuntimeDirOf(provider), vm.Uid, "api.sock");
            (await VmmApiProbe.StateAsync(provider, socket)).Should().Be("Running");
            Regex.Matches(Node.ReadShared(vm.ConsoleLogPath), "Linux version").Should().HaveCount(1, $"the {provider} guest booted once");
            node.Daemon.Stderr.Should().NotContain($"default/{id}: started");
        }

        TestContext.Progress.WriteLine($"[measure] restarted daemon -> firecracker and cloud-hypervisor VMs adopted: {adoptedAfter.TotalSeconds:0.00} s");
    }
}

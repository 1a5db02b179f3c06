using System.Text.Json;
using System.Text.RegularExpressions;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// The Firecracker and Cloud Hypervisor drivers through the daemon: the real vistarad, started with
/// <c>--firecracker-bin</c> and <c>--cloud-hypervisor-bin</c> pointing at the stand-ins (tests/standins: each serves
/// its VMM's documented API over the Unix socket and keeps its state machine) and <c>--ops-bin</c> at the ops
/// stand-in; the real vis CLI; and the test's own client on each VM's API socket to check what the VMM itself says.
/// One daemon serves the fixture; every test uses its own VM ids and deletes its VMs afterwards.
/// </summary>
[NonParallelizable]
public sealed class StandInProviderTests
{
    private Node? _node;
    private readonly List<(string Namespace, string Id)> _vms = [];

    private Node Node => _node ?? throw new InvalidOperationException("no node");

    [OneTimeSetUp]
    public async Task StartNode()
    {
        _node = await Node.StartAsync(n =>
        [
            .. StandInNode.DaemonArgs,
            "--ops-bin", BuiltPrograms.OpsStandIn, "--ops-home", Path.Combine(n.Root, "ops"),
        ]);
    }

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
        foreach (var (ns, id) in _vms)
        {
            await Node.ForceDeleteAsync(ns, id);
        }

        _vms.Clear();
    }

    [Test]
    public async Task Start_TheDaemonReportsEachStandInUsableByItsPath()
    {
        await Node.Daemon.WaitForLogAsync("provider unikernel:", Node.Patience); // the last of the start-up report

        Node.Daemon.Stderr.Should()
            .Contain($"provider firecracker: usable (Firecracker v1.10.1 (hypercore test stand-in) ({BuiltPrograms.FirecrackerStandIn}))").And
            .Contain($"provider cloud-hypervisor: usable (cloud-hypervisor v41.0.0 (hypercore test stand-in) ({BuiltPrograms.CloudHypervisorStandIn}))").And
            .Contain($"provider unikernel: usable (Ops version: 0.1.43 (hypercore test stand-in) ({BuiltPrograms.OpsStandIn}; OPS_HOME {Path.Combine(Node.Root, "ops")}))");
    }

    [TestCase("firecracker")]
    [TestCase("cloud-hypervisor")]
    public async Task Lifecycle_RunPauseResumeStopStartDelete_TheVmmAgreesAtEachStep(string provider)
    {
        var id = StandInNode.Short(provider) + "-life";
        _vms.Add(("default", id));
        var vm = await StandInNode.RunAsync(Node, provider, id);
        var vmDir = Path.Combine(Node.RuntimeDirOf(provider), vm.Uid);
        var socket = Path.Combine(vmDir, "api.sock");
        string.Join(' ', ProcFs.CommandLine(vm.Pid)).Should().Contain(socket, "the VMM serves its API on the VM's socket");
        (await VmmApiProbe.StateAsync(provider, socket)).Should().Be("Running");
        vm.ConsoleLogPath.Should().Be(Path.Combine(vmDir, "console.log"));
        await Node.WaitForGuestReadyAsync(vm.ConsoleLogPath, Node.Patience);

        var pause = await Node.VisAsync("pause", id, "--wait", "--timeout", "2m");
        pause.ExitCode.Should().Be(0, pause.ToString());
        (await VmmApiProbe.StateAsync(provider, socket)).Should().Be("Paused", "the daemon paused the VM through the VMM's API");
        var paused = await Node.GetAsync(id);
        paused.Phase.Should().Be("Paused");
        paused.Pid.Should().Be(vm.Pid);
        paused.Condition("Paused")!.Value.Status.Should().Be("True");

        var resume = await Node.VisAsync("resume", id, "--wait", "--timeout", "2m");
        resume.ExitCode.Should().Be(0, resume.ToString());
        (await VmmApiProbe.StateAsync(provider, socket)).Should().Be("Running");
        var resumed = await Node.GetAsync(id);
        resumed.Phase.Should().Be("Running");
        resumed.Pid.Should().Be(vm.Pid, "pause and resume keep the same VMM process");

        var stop = await Node.VisAsync("stop", id, "--wait", "--timeout", "2m");
        stop.ExitCode.Should().Be(0, stop.ToString());
        ProcFs.IsAlive(vm.Pid).Should().BeFalse("stop ends the VMM process");
        ProcFs.FindByCommandLine(vm.Uid).Should().BeEmpty();
        File.Exists(socket).Should().BeFalse("stop removes the API socket");
        Node.Daemon.Stderr.Should().Contain($"default/{id}: {provider} pid {vm.Pid} stopped: guest powered off", "stop is a guest power-off first");
        Node.ReadShared(vm.ConsoleLogPath).Should().Contain(StandInNode.PowerOffLine(provider));
        var stopped = await Node.GetAsync(id);
        stopped.Phase.Should().Be("Stopped");
        stopped.Pid.Should().Be(0);

        var before = Node.ReadShared(vm.ConsoleLogPath).Length;
        var start = await Node.VisAsync("start", id, "--wait", "--timeout", "2m");
        start.ExitCode.Should().Be(0, start.ToString());
        var again = await Node.GetAsync(id);
        again.Phase.Should().Be("Running");
        again.Uid.Should().Be(vm.Uid);
        again.Pid.Should().BePositive().And.NotBe(vm.Pid);
        again.RestartCount.Should().Be(0, "a start asked for is not a restart");
        (await VmmApiProbe.StateAsync(provider, socket)).Should().Be("Running");
        var console = await Node.WaitForGuestReadyAsync(again.ConsoleLogPath, Node.Patience, from: before);
        Regex.Matches(console, "Linux version").Should().HaveCount(2, "the console log keeps both boots");

        var delete = await Node.VisAsync("delete", id, "--wait", "--timeout", "2m");
        delete.ExitCode.Should().Be(0, delete.ToString());
        var get = await Node.VisAsync("get", id);
        get.ExitCode.Should().Be(3, get.ToString());
        ProcFs.IsAlive(again.Pid).Should().BeFalse();
        ProcFs.FindByCommandLine(vm.Uid).Should().BeEmpty("no VMM carries the deleted VM's uid");
        File.Exists(socket).Should().BeFalse();
        Directory.Exists(vmDir).Should().BeFalse("delete removes the VM's runtime directory (console, vm.json, pid file, socket lock)");
    }

    [TestCase("firecracker")]
    [TestCase("cloud-hypervisor")]
    public async Task Run_KernelDoesNotExist_KernelNotFoundReachesStatusAndNoVmmIsStarted(string provider)
    {
        var id = StandInNode.Short(provider) + "-nokernel";
        _vms.Add(("default", id));
        var kernel = Path.Combine(Node.Root, "no-such-dir", "vmlinux");
        var expected = $"kernel image not found: {kernel}";

        var run = await Node.VisAsync("run", "--provider", provider, "--name", id, "--image", kernel, "--timeout", "2m");

        run.ExitCode.Should().Be(8, run.ToString());
        run.Stderr.Should().Contain($"vis: microvm default/{id} failed: {expected} (KernelNotFound)");
        // The reconciler retries with backoff (the file may appear); between tries the VM is Failed with no VMM left.
        var failed = await Node.WaitAsync("default", id,
            v => v.Phase == "Failed" && ProcFs.FindByCommandLine(v.Uid).Count == 0, "Failed with no VMM process for the VM");
        foreach (var type in new[] { "Ready", "Synchronized" })
        {
            failed.Condition(type).Should().Be(("False", "KernelNotFound", expected), type);
        }

        Node.Daemon.Stderr.Should().Contain($"default/{id}: {provider} start failed: {expected}");
        File.Exists(Path.Combine(Node.RuntimeDirOf(provider), failed.Uid, "api.sock")).Should().BeFalse("a failed start removes the socket");
        Node.Daemon.HasExited.Should().BeFalse();
    }

    [TestCase("firecracker")]
    [TestCase("cloud-hypervisor")]
    public async Task VmmKilledFromOutside_RestartPolicyAlways_IsNoticedAndRestartedOnce(string provider)
    {
        var id = StandInNode.Short(provider) + "-kill";
        _vms.Add(("default", id));
        var vm = await StandInNode.RunAsync(Node, provider, id);
        vm.RestartCount.Should().Be(0);
        var before = Node.ReadShared(vm.ConsoleLogPath).Length;

        ProcFs.Kill(vm.Pid);
        var back = await Node.WaitAsync("default", id, v => v.Phase == "Running" && v.Pid > 0 && v.Pid != vm.Pid, "a restarted VMM");

        back.RestartCount.Should().Be(1);
        back.Uid.Should().Be(vm.Uid);
        ProcFs.IsAlive(vm.Pid).Should().BeFalse();
        ProcFs.IsAlive(back.Pid).Should().BeTrue();
        ProcFs.CommandLine(back.Pid)[0].Should().Be(StandInNode.Binary(provider));
        (await VmmApiProbe.StateAsync(provider, Path.Combine(Node.RuntimeDirOf(provider), vm.Uid, "api.sock"))).Should().Be("Running",
            "the new VMM was configured and booted again");
        Node.Daemon.Stderr.Should().Contain($"default/{id}: the hypervisor process ended unexpectedly (restartPolicy Always)");
        await Node.WaitForGuestReadyAsync(back.ConsoleLogPath, Node.Patience, from: before);
        (await Node.GetAsync(id)).RestartCount.Should().Be(1, "one crash, one restart");
    }

    [TestCase("firecracker")]
    [TestCase("cloud-hypervisor")]
    public async Task VmmKilledFromOutside_RestartPolicyNever_StaysFailedWithNothingLeft(string provider)
    {
        var id = StandInNode.Short(provider) + "-never";
        _vms.Add(("default", id));
        var vm = await StandInNode.RunAsync(Node, provider, id, "--restart-policy", "Never");
        var socket = Path.Combine(Node.RuntimeDirOf(provider), vm.Uid, "api.sock");

        ProcFs.Kill(vm.Pid);
        var failed = await Node.WaitAsync("default", id, v => v.Phase == "Failed", "phase Failed");

        failed.Condition("Ready").Should().Be(("False", "Crashed", "the hypervisor process ended unexpectedly; restartPolicy Never"));
        failed.Pid.Should().Be(0);
        Node.Daemon.Stderr.Should().Contain($"default/{id}: the hypervisor process ended unexpectedly (restartPolicy Never)");

        // "Not restarted" can only be seen over time: watch across more than one of the reconciler's polls (2 s).
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(3))
        {
            var seen = await Node.TryGetOverHttpAsync("default", id);
            seen!.Phase.Should().Be("Failed");
            seen.RestartCount.Should().Be(0);
            ProcFs.FindByCommandLine(vm.Uid).Should().BeEmpty("restartPolicy Never starts nothing");
            await Task.Delay(250);
        }

        File.Exists(socket).Should().BeFalse("the dead VMM's socket is cleared");
    }

    [Test]
    public async Task Pause_UnikernelThroughOps_IsRefusedWithFailedPreconditionAndTheVmRunsOn()
    {
        var image = BootSectorImage.Write(Path.Combine(Node.Root, "uk-pause.img"));
        _vms.Add(("default", "uk-pause"));
        var vm = await StandInNode.RunAsync(Node, "unikernel", "uk-pause", "--image", image);
        var qemu = ProcFs.CommandLine(vm.Pid);
        qemu[0].Should().Be("qemu-system-x86_64", "ops started QEMU on the image");
        string.Join(' ', qemu).Should().Contain(Path.Combine(Node.Root, "ops", "images", $"hypercore-{vm.Uid}.img"));
        await Node.WaitForFileTextAsync(Path.Combine(Node.Root, "ops", "logs", $"hypercore-{vm.Uid}.log"), BootSectorImage.Marker, Node.Patience);

        var pause = await Node.VisAsync("pause", "uk-pause", "--wait", "--timeout", "1m");

        pause.ExitCode.Should().Be(5, pause.ToString());
        pause.Stderr.Should().Contain("vis: provider \"unikernel\" cannot pause a VM");
        var after = await Node.GetAsync("uk-pause");
        after.Phase.Should().Be("Running");
        after.Pid.Should().Be(vm.Pid);
        after.DesiredState.Should().Be("Running", "the refused request changed nothing");
        ProcFs.IsAlive(vm.Pid).Should().BeTrue();
    }

    [Test]
    public async Task Create_UnikernelThroughOpsAskedToBePaused_FailsWithUnsupportedAndStartsNothing()
    {
        var image = BootSectorImage.Write(Path.Combine(Node.Root, "uk-paused.img"));
        var spec = Path.Combine(Node.Root, "uk-paused.json");
        await File.WriteAllTextAsync(spec, JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["id"] = "uk-paused",
            ["provider"] = "unikernel",
            ["vcpu"] = 1,
            ["memoryInMb"] = 128,
            ["kernel"] = new Dictionary<string, string> { ["image"] = image },
            ["state"] = "Paused",
        }));
        _vms.Add(("default", "uk-paused"));

        var create = await Node.VisAsync("create", "-f", spec, "--wait", "--timeout", "1m");

        create.ExitCode.Should().Be(8, create.ToString());
        create.Stderr.Should().Contain("vis: microvm default/uk-paused failed: provider \"unikernel\" cannot pause a VM (Unsupported)");
        var vm = await Node.GetAsync("uk-paused");
        vm.Phase.Should().Be("Failed");
        vm.Condition("Ready").Should().Be(("False", "Unsupported", "provider \"unikernel\" cannot pause a VM"));
        ProcFs.FindByCommandLine(vm.Uid).Should().BeEmpty("the reconciler refuses before any driver call");
        File.Exists(Path.Combine(Node.Root, "ops", "images", $"hypercore-{vm.Uid}.img")).Should().BeFalse("ops was never given the image");
    }
}

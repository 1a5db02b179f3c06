using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// A user's session against one node: the real vistarad and vis processes, real QEMU under TCG. One daemon serves
/// the whole fixture (starting one costs seconds); every test uses its own VM ids and deletes its VMs afterwards.
/// </summary>
[NonParallelizable]
public sealed class NodeLifecycleTests
{
    private Node? _node;
    private readonly List<(string Namespace, string Id)> _vms = [];

    private Node Node => _node ?? throw new InvalidOperationException("no node");

    [OneTimeSetUp]
    public async Task StartNode() => _node = await Node.StartAsync();

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

    /// <summary>`vis run --name ID -o json`, which must reach Running.</summary>
    private async Task<(VmView Vm, VisResult Result)> RunAsync(string id)
    {
        _vms.Add(("default", id));
        var result = await Node.VisAsync("run", "--name", id, "-o", "json", "--timeout", "2m");
        result.ExitCode.Should().Be(0, result.ToString());
        var vm = VmView.Parse(result.Stdout);
        vm.Phase.Should().Be("Running", result.ToString());
        vm.Pid.Should().BePositive();
        return (vm, result);
    }

    [Test]
    public async Task Run_DefaultImage_ReachesRunningAndTheGuestReadyLineIsInTheConsoleLog()
    {
        var clock = Stopwatch.StartNew();
        var (vm, run) = await RunAsync("e2e-run");
        var toRunning = clock.Elapsed;

        ProcFs.IsAlive(vm.Pid).Should().BeTrue();
        ProcFs.CommandLine(vm.Pid).Should().Contain(Path.Combine(Node.StateDir, "images", "default", "vmlinuz"), "image \"default\" is the node's images/default");
        run.Stderr.Should().Contain("default/e2e-run: Running", "without a terminal vis reports each phase as a plain line");
        vm.ConsoleLogPath.Should().Be(Path.Combine(Node.RuntimeDir, vm.Uid, "console.log"));
        await Node.WaitForGuestReadyAsync(vm.ConsoleLogPath, Node.Patience);
        var toGuest = clock.Elapsed;

        var logs = await Node.VisAsync("logs", "e2e-run");
        logs.ExitCode.Should().Be(0, logs.ToString());
        logs.Stdout.Should().Contain(GuestImage.ReadyLine).And.Contain("Linux version");

        TestContext.Progress.WriteLine(
            $"[measure] vis run -> Running: {toRunning.TotalSeconds:0.00} s; -> {GuestImage.ReadyLine} in the console: {toGuest.TotalSeconds:0.00} s");
    }

    [Test]
    public async Task Pause_RunningVm_QmpSaysPausedAndPhaseIsPaused_ResumeRunsItAgain()
    {
        var (vm, _) = await RunAsync("e2e-pause");
        var qmp = Path.Combine(Node.RuntimeDir, vm.Uid, "qmp.sock");

        var pause = await Node.VisAsync("pause", "e2e-pause", "--wait", "--timeout", "2m");
        pause.ExitCode.Should().Be(0, pause.ToString());
        (await QmpProbe.QueryStatusAsync(qmp, TimeSpan.FromSeconds(30))).Should().Be("paused");
        var paused = await Node.GetAsync("e2e-pause");
        paused.Phase.Should().Be("Paused");
        paused.Condition("Paused").Should().NotBeNull();
        paused.Condition("Paused")!.Value.Status.Should().Be("True");
        paused.Condition("Ready")!.Value.Should().Be(("False", "Paused", "the VM is paused"));

        var resume = await Node.VisAsync("resume", "e2e-pause", "--wait", "--timeout", "2m");
        resume.ExitCode.Should().Be(0, resume.ToString());
        (await QmpProbe.QueryStatusAsync(qmp, TimeSpan.FromSeconds(30))).Should().Be("running");
        var resumed = await Node.GetAsync("e2e-pause");
        resumed.Phase.Should().Be("Running");
        resumed.Pid.Should().Be(vm.Pid, "pause and resume keep the same QEMU process");
    }

    [Test]
    public async Task Stop_Wait_EndsTheQemuProcessAndStart_BootsANewOne()
    {
        var (vm, _) = await RunAsync("e2e-stop");
        await Node.WaitForGuestReadyAsync(vm.ConsoleLogPath, Node.Patience); // its power button works from here

        var stop = await Node.VisAsync("stop", "e2e-stop", "--wait", "--timeout", "2m");
        stop.ExitCode.Should().Be(0, stop.ToString());
        ProcFs.IsAlive(vm.Pid).Should().BeFalse("stop ends the QEMU process");
        Node.ReadShared(vm.ConsoleLogPath).Should().Contain("hypercore: power button pressed, powering off", "stop is a guest power-off first");
        Node.Daemon.Stderr.Should().Contain($"default/e2e-stop: qemu pid {vm.Pid} stopped: guest powered off");
        ProcFs.FindByCommandLine(vm.Uid).Should().BeEmpty();
        var stopped = await Node.GetAsync("e2e-stop");
        stopped.Phase.Should().Be("Stopped");
        stopped.Pid.Should().Be(0);

        var before = Node.ReadShared(vm.ConsoleLogPath).Length;
        var start = await Node.VisAsync("start", "e2e-stop", "--wait", "--timeout", "2m");
        start.ExitCode.Should().Be(0, start.ToString());
        var again = await Node.GetAsync("e2e-stop");
        again.Phase.Should().Be("Running");
        again.Uid.Should().Be(vm.Uid);
        again.Pid.Should().BePositive().And.NotBe(vm.Pid);
        ProcFs.IsAlive(again.Pid).Should().BeTrue();
        again.RestartCount.Should().Be(0, "a start asked for is not a restart");
        var console = await Node.WaitForGuestReadyAsync(again.ConsoleLogPath, Node.Patience, from: before);
        Regex.Matches(console, "Linux version").Should().HaveCount(2, "the console log keeps both boots");
    }

    [Test]
    public async Task Delete_Wait_LeavesNoRecordProcessSocketOrDirectory()
    {
        var (vm, _) = await RunAsync("e2e-del");
        await Node.WaitForGuestReadyAsync(vm.ConsoleLogPath, Node.Patience);
        var vmDir = Path.Combine(Node.RuntimeDir, vm.Uid);
        var socket = Path.Combine(vmDir, "qmp.sock");
        File.Exists(socket).Should().BeTrue("the running VM has its QMP socket");
        ProcFs.FindByCommandLine(vm.Uid).Should().Equal(vm.Pid);

        var delete = await Node.VisAsync("delete", "e2e-del", "--wait", "--timeout", "2m");
        delete.ExitCode.Should().Be(0, delete.ToString());
        delete.Stdout.Should().Contain("e2e-del deleted");

        var get = await Node.VisAsync("get", "e2e-del");
        get.ExitCode.Should().Be(3, get.ToString());
        get.Stderr.Should().Contain("not found");
        ProcFs.IsAlive(vm.Pid).Should().BeFalse();
        ProcFs.FindByCommandLine(vm.Uid).Should().BeEmpty("no QEMU carries the deleted VM's uid");
        File.Exists(socket).Should().BeFalse();
        Directory.Exists(vmDir).Should().BeFalse("delete removes the VM's runtime directory");
    }

    // Guest bootstrap: metadata from a hac.toml reaches the default image's NoCloud reader through the seed disk.
    [Test]
    public async Task Run_HacTomlWithMetadata_GuestTakesHostnameAndRunsUserData_DeleteLeavesNoSeedDisk()
    {
        var config = Path.Combine(Node.Root, "e2e-meta.toml");
        await File.WriteAllTextAsync(config, """
            name = "e2e-meta"
            [metadata]
            user-data = "#!/bin/sh\necho e2e-user-data on $(hostname)\n"
            x-owner = "team-a"
            """);
        _vms.Add(("default", "e2e-meta"));

        var run = await Node.VisAsync("run", "--config", config, "-o", "json", "--timeout", "2m");

        run.ExitCode.Should().Be(0, run.ToString());
        var vm = VmView.Parse(run.Stdout);
        var vmDir = Path.Combine(Node.RuntimeDir, vm.Uid);
        var console = await Node.WaitForFileTextAsync(vm.ConsoleLogPath, "e2e-user-data on e2e-meta", Node.Patience);
        console.Should().Contain($"hypercore-nocloud: instance-id={vm.Uid} hostname=e2e-meta user-data=script network-config=no");
        File.Exists(Path.Combine(vmDir, "cidata.img")).Should().BeTrue();

        var delete = await Node.VisAsync("delete", "e2e-meta", "--wait", "--timeout", "2m");

        delete.ExitCode.Should().Be(0, delete.ToString());
        Directory.Exists(vmDir).Should().BeFalse("delete removes the VM directory, seed disk included");
    }

    [Test]
    public async Task Run_HacTomlWithMetadataKeyOutsideCloudInit_RefusedNamingTheKeyAndNothingCreated()
    {
        var config = Path.Combine(Node.Root, "e2e-badmeta.toml");
        await File.WriteAllTextAsync(config, """
            name = "e2e-badmeta"
            [metadata]
            owner = "team-a"
            """);

        var run = await Node.VisAsync("run", "--config", config, "--timeout", "1m");

        run.ExitCode.Should().NotBe(0, run.ToString());
        run.Stderr.Should().Contain("metadata key \"owner\"").And.Contain("x-");
        (await Node.TryGetOverHttpAsync("default", "e2e-badmeta")).Should().BeNull();
    }

    [Test]
    public async Task QemuKilledFromOutside_IsNoticedAndRestarted_RestartPolicyAlways()
    {
        var (vm, _) = await RunAsync("e2e-kill");
        vm.RestartCount.Should().Be(0);

        var before = Node.ReadShared(vm.ConsoleLogPath).Length;
        var clock = Stopwatch.StartNew();
        ProcFs.Kill(vm.Pid);
        var back = await Node.WaitAsync("default", "e2e-kill", v => v.Phase == "Running" && v.Pid > 0 && v.Pid != vm.Pid, "a restarted QEMU");
        var noticed = clock.Elapsed;

        var restarted = await Node.GetAsync("e2e-kill");
        restarted.Phase.Should().Be("Running");
        restarted.Uid.Should().Be(vm.Uid);
        restarted.Pid.Should().Be(back.Pid).And.NotBe(vm.Pid);
        restarted.RestartCount.Should().Be(1);
        ProcFs.IsAlive(restarted.Pid).Should().BeTrue();
        ProcFs.IsAlive(vm.Pid).Should().BeFalse();
        Node.Daemon.Stderr.Should().Contain("default/e2e-kill: the hypervisor process ended unexpectedly");
        await Node.WaitForGuestReadyAsync(restarted.ConsoleLogPath, Node.Patience, from: before); // the new QEMU boots the guest again
        TestContext.Progress.WriteLine($"[measure] external SIGKILL of QEMU -> restarted and Running: {noticed.TotalSeconds:0.00} s");
    }

    [Test]
    public async Task Run_FirecrackerMissingOnThisNode_FailsWithProviderUnavailableAndTheDaemonKeepsRunning()
    {
        _vms.Add(("default", "fc1"));
        var run = await Node.VisAsync("run", "--provider", "firecracker", "--name", "fc1", "--timeout", "2m");

        run.ExitCode.Should().Be(8, run.ToString());
        run.Stderr.Should().MatchRegex(@"vis: microvm default/fc1 failed: firecracker binary not found: tried \S*/firecracker.* \(ProviderUnavailable\)");
        var vm = await Node.GetAsync("fc1");
        vm.Phase.Should().Be("Failed");
        vm.Provider.Should().Be("firecracker");
        foreach (var type in new[] { "Ready", "Synchronized" })
        {
            var condition = vm.Condition(type);
            condition.Should().NotBeNull(type);
            condition!.Value.Status.Should().Be("False");
            condition.Value.Reason.Should().Be("ProviderUnavailable");
            condition.Value.Message.Should().StartWith("firecracker binary not found: tried /");
        }

        Node.Daemon.HasExited.Should().BeFalse();
        var list = await Node.VisAsync("list");
        list.ExitCode.Should().Be(0, list.ToString());
        list.Stdout.Should().MatchRegex(@"fc1\s+default\s+firecracker\s+Running\s+Failed");
    }

    [Test]
    public async Task HttpJson_GrpcurlShapedCreate_BootsAVmThatReachesRunning()
    {
        var image = await GuestImage.EnsureAsync();
        _vms.Add(("demo", "web1"));
        // The body a grpcurl user sends to VMService.Create, as JSON over plain HTTP (transcoded by the daemon).
        var body = $$$"""
            {"microvm":{"id":"web1","namespace":"demo","vcpu":1,"memoryInMb":128,
              "kernel":{"image":{{{JsonSerializer.Serialize(Path.Combine(image, "vmlinuz"))}}},"cmdline":{"console":"ttyS0"}},
              "initrd":{"image":{{{JsonSerializer.Serialize(Path.Combine(image, "initrd.img"))}}}},"provider":"qemu"}}
            """;

        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await Node.Http.PostAsync("/v1/microvms", content);
        var text = await response.Content.ReadAsStringAsync();
        response.IsSuccessStatusCode.Should().BeTrue(text);
        var created = VmView.Parse(text);
        created.Uid.Should().NotBeNullOrEmpty();

        var running = await Node.WaitAsync("demo", "web1", v => v.Phase == "Running", "phase Running");
        running.Uid.Should().Be(created.Uid);
        ProcFs.IsAlive(running.Pid).Should().BeTrue();
        string.Join(' ', ProcFs.CommandLine(running.Pid)).Should().Contain(Path.Combine(image, "vmlinuz")).And.Contain("console=ttyS0");
        await Node.WaitForGuestReadyAsync(running.ConsoleLogPath, Node.Patience);
    }

    /// <summary>
    /// The same boot without Hypercore: QEMU started by hand with exactly the command line the driver used (read
    /// from /proc), only its files moved. Measures both; asserts that both guests come up.
    /// </summary>
    [Test]
    public async Task BareQemu_SameCommandLineAsTheDriver_BootsTheSameGuest()
    {
        var clock = Stopwatch.StartNew();
        var (vm, _) = await RunAsync("e2e-bare");
        var toRunning = clock.Elapsed;
        await Node.WaitForGuestReadyAsync(vm.ConsoleLogPath, Node.Patience);
        var toGuest = clock.Elapsed;
        var args = ProcFs.CommandLine(vm.Pid).ToList();
        args.Should().Contain("-sandbox").And.Contain("-append");
        await Node.ForceDeleteAsync("default", "e2e-bare"); // one guest at a time, as the daemon had it

        var vmDir = Path.Combine(Node.RuntimeDir, vm.Uid);
        var bareDir = Directory.CreateDirectory(Path.Combine(Node.Root, "bare")).FullName;
        var bare = args.Select(a => a.Replace(vmDir, bareDir, StringComparison.Ordinal).Replace(vm.Uid, "bare", StringComparison.Ordinal)).ToList();
        bare.Should().NotContain(a => a.Contains(vm.Uid, StringComparison.Ordinal));
        var console = Path.Combine(bareDir, "console.log");

        clock.Restart();
        var info = new ProcessStartInfo(bare[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in bare.Skip(1))
        {
            info.ArgumentList.Add(a);
        }

        int? pid = null;
        try
        {
            // The driver runs QEMU in the foreground of its own session; here it is simply a child of the test.
            using var launcher = Process.Start(info)!;
            pid = launcher.Id;
            var text = await Node.WaitForFileTextAsync(console, GuestImage.ReadyLine, Node.Patience);
            var bareToGuest = clock.Elapsed;
            Regex.Matches(text, "Linux version").Should().HaveCount(1);

            TestContext.Progress.WriteLine(
                $"[measure] vistarad+vis: vis run -> Running {toRunning.TotalSeconds:0.00} s, -> {GuestImage.ReadyLine} {toGuest.TotalSeconds:0.00} s; " +
                $"bare qemu (same command line, TCG) -> {GuestImage.ReadyLine} {bareToGuest.TotalSeconds:0.00} s");
        }
        finally
        {
            if (pid is { } p)
            {
                ProcFs.Kill(p);
            }

            ProcFs.KillAll(bareDir);
        }
    }
}

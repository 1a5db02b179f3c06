using Hypercore.Testing;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Firecracker;

/// <summary>The Firecracker driver against the firecracker stand-in (same flags, same API, same state machine).</summary>
[TestFixture]
[NonParallelizable]
public sealed class FirecrackerDriverTests
{
    private Scratch _scratch = null!;
    private FirecrackerDriver _driver = null!;

    [SetUp]
    public void SetUp()
    {
        _scratch = new Scratch();
        _driver = NewDriver();
    }

    [TearDown]
    public async Task TearDown()
    {
        _driver.Dispose(); // its pidfd exit watch (issue 15)
        await _scratch.DisposeAsync();
    }

    private FirecrackerDriver NewDriver(Action<FirecrackerOptions>? change = null)
    {
        var options = new FirecrackerOptions
        {
            BinaryPath = StandIns.Firecracker,
            RuntimeDirectory = _scratch.RuntimeDirectory,
            RequireKvm = false, // the stand-in needs no KVM
            StartTimeout = TimeSpan.FromSeconds(60),
        };
        change?.Invoke(options);
        return new FirecrackerDriver(Options.Create(options), TimeProvider.System, NullLogger<FirecrackerDriver>.Instance);
    }

    [Test]
    public async Task CheckAvailability_MissingBinary_ReportsUnavailableNamingThePath()
    {
        var driver = NewDriver(o => o.BinaryPath = "/nonexistent/hypercore/firecracker");

        var availability = await driver.CheckAvailabilityAsync();

        availability.Available.Should().BeFalse();
        availability.Detail.Should().Be("firecracker binary not found: tried /nonexistent/hypercore/firecracker");
    }

    [Test]
    public async Task CheckAvailability_BareNameNotOnPath_NamesEveryPathTried()
    {
        var driver = NewDriver(o => o.BinaryPath = "firecracker-not-installed-here");

        var availability = await driver.CheckAvailabilityAsync();

        availability.Available.Should().BeFalse();
        availability.Detail.Should().StartWith("firecracker binary not found: tried ").And.Contain("/usr/bin/firecracker-not-installed-here");
    }

    [Test]
    public async Task CheckAvailability_StandIn_ReportsVersionAndPath()
    {
        var availability = await _driver.CheckAvailabilityAsync();

        availability.Available.Should().BeTrue(availability.Detail);
        availability.Detail.Should().Contain("Firecracker v1.10.1").And.Contain(StandIns.Firecracker);
    }

    [Test]
    public async Task Start_MissingBinary_ThrowsProviderUnavailable()
    {
        var driver = NewDriver(o => o.BinaryPath = "/nonexistent/hypercore/firecracker");

        var act = () => driver.StartAsync(_scratch.Vm("nobin"));

        (await act.Should().ThrowAsync<DriverException>()).Which.Reason.Should().Be(Conditions.ReasonProviderUnavailable);
    }

    [Test]
    public async Task Lifecycle_StartPauseResumeStopStartCleanup_LeavesNothingBehind()
    {
        Privileges.RequireRoot("creating tap devices");

        var vm = _scratch.Vm("fc-life", s => s with { Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0" }] });
        var tap = TapDevices.TapName(vm.Uid, 0);
        var socket = Path.Combine(_scratch.VmDirectory(vm), "api.sock");

        var started = await _driver.StartAsync(vm);

        started.State.Should().Be(LiveState.Running);
        var pid = started.Pid!.Value;
        HostProcess.IsAlive(pid).Should().BeTrue();
        HostProcess.CommandLine(pid).Should().Contain(["--api-sock", socket]);
        TapDevices.Exists(tap).Should().BeTrue("the driver creates the tap before firecracker opens it");
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);

        await _driver.PauseAsync(vm);
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.Paused);
        await _driver.ResumeAsync(vm);
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);

        var watch = Stopwatch.StartNew();
        await _driver.StopAsync(vm, TimeSpan.FromSeconds(30));
        watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(20), "SendCtrlAltDel makes the guest power off long before the grace period ends");
        HostProcess.IsAlive(pid).Should().BeFalse();
        Eventually.Read(started.ConsoleLogPath!).Should().Contain("HYPERCORE-GUEST-READY").And.Contain("reboot: Restarting system");
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
        File.Exists(socket).Should().BeFalse();
        TapDevices.Exists(tap).Should().BeFalse();

        var again = await _driver.StartAsync(vm);
        again.State.Should().Be(LiveState.Running);
        again.Pid.Should().NotBe(pid);

        await _driver.CleanupAsync(vm);
        HostProcess.IsAlive(again.Pid!.Value).Should().BeFalse();
        Directory.Exists(_scratch.VmDirectory(vm)).Should().BeFalse();
        TapDevices.Exists(tap).Should().BeFalse();
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
        await _driver.CleanupAsync(vm); // safe twice
    }

    [Test]
    public async Task Start_SendsMachineConfigBootSourceDrivesNicsAndMetadata()
    {
        Privileges.RequireRoot("creating tap devices");

        var data = _scratch.File("data.img", "data\n");
        var vm = _scratch.Vm("fc-config", s => s with
        {
            AdditionalVolumes = [new VolumeSpec { Id = "data", HostPath = data, IsReadOnly = true }],
            Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", GuestMac = "02:00:00:00:00:07" }],
            Kernel = s.Kernel with { AddNetworkConfig = true },
            Metadata = new Dictionary<string, string> { ["user-data"] = "#!/bin/sh\necho hi\n", ["x-role"] = "test" },
        });

        await _driver.StartAsync(vm);

        using var api = new UnixSocketApi(Path.Combine(_scratch.VmDirectory(vm), "api.sock"), new ApiPolicy(TimeSpan.FromSeconds(10), 3, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)), TimeProvider.System);
        var config = (await api.GetAsync("/vm/config", default)).Json!;
        config["machine-config"]!["vcpu_count"]!.GetValue<int>().Should().Be(2);
        config["machine-config"]!["mem_size_mib"]!.GetValue<int>().Should().Be(256);
        config["boot-source"]!["kernel_image_path"]!.GetValue<string>().Should().Be(_scratch.Kernel);
        config["boot-source"]!["initrd_path"]!.GetValue<string>().Should().Be(_scratch.Initrd);
        var bootArgs = config["boot-source"]!["boot_args"]!.GetValue<string>();
        bootArgs.Should().StartWith("console=ttyS0 panic=1 reboot=k ds=nocloud-net;s=http://169.254.169.254/latest/ network-config=",
            "cloud-init is pointed at MMDS, and gets the network config it needs to reach it on the command line, as flintlock does");
        var drives = config["drives"]!.AsArray();
        drives.Select(d => d!["drive_id"]!.GetValue<string>()).Should().Equal("root", "data");
        drives[0]!["is_root_device"]!.GetValue<bool>().Should().BeTrue();
        drives[1]!["is_read_only"]!.GetValue<bool>().Should().BeTrue();
        var nic = config["network-interfaces"]!.AsArray().Single()!;
        nic["host_dev_name"]!.GetValue<string>().Should().Be(TapDevices.TapName(vm.Uid, 0));
        nic["guest_mac"]!.GetValue<string>().Should().Be("02:00:00:00:00:07");
        config["mmds-config"]!["network_interfaces"]!.AsArray().Single()!.GetValue<string>().Should().Be("eth0");
        var mmds = (await api.GetAsync("/mmds", default)).Json!;
        // flintlock's layout: every cloud-init file under latest/, as plain text.
        mmds.AsObject().Select(kv => kv.Key).Should().Equal("latest");
        var latest = mmds["latest"]!.AsObject();
        latest.Select(kv => kv.Key).Should().BeEquivalentTo("meta-data", "user-data", "network-config", "x-role");
        latest["meta-data"]!.GetValue<string>().Should().Be($"instance-id: {vm.Uid}\nlocal-hostname: fc-config\n");
        latest["user-data"]!.GetValue<string>().Should().Be("#!/bin/sh\necho hi\n");
        latest["x-role"]!.GetValue<string>().Should().Be("test");
        latest["network-config"]!.GetValue<string>().Should().Contain("macaddress: 02:00:00:00:00:07").And.Contain("dhcp4: true");
        Encoding.UTF8.GetString(Convert.FromBase64String(bootArgs.Split("network-config=")[1]))
            .Should().Be(latest["network-config"]!.GetValue<string>());
        File.Exists(Path.Combine(_scratch.VmDirectory(vm), "cidata.img")).Should().BeFalse("Firecracker serves the data from MMDS, not a disk");
    }

    [Test]
    public async Task Start_RootPartitionId_IsTheRootDrivesPartuuid()
    {
        var data = _scratch.File("data-part.img", "data\n");
        var vm = _scratch.Vm("fc-partuuid", s => s with
        {
            RootVolume = s.RootVolume! with { PartitionId = "6c2a6b1e-01" },
            AdditionalVolumes = [new VolumeSpec { Id = "data", HostPath = data }],
        });

        var started = await _driver.StartAsync(vm);

        using var api = new UnixSocketApi(Path.Combine(_scratch.VmDirectory(vm), "api.sock"), new ApiPolicy(TimeSpan.FromSeconds(10), 3, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)), TimeProvider.System);
        var drives = (await api.GetAsync("/vm/config", default)).Json!["drives"]!.AsArray();
        drives[0]!["partuuid"]!.GetValue<string>().Should().Be("6c2a6b1e-01");
        drives[1]!.AsObject().ContainsKey("partuuid").Should().BeFalse("partuuid only selects the root partition");
        (await api.GetAsync("/vm/config", default)).Json!["boot-source"]!["boot_args"]!.GetValue<string>()
            .Should().NotContain("root=", "Firecracker adds root=PARTUUID= itself from the drive");
        Eventually.Read(started.ConsoleLogPath!).Should().Contain("root=PARTUUID=6c2a6b1e-01");
    }

    [Test]
    public async Task Start_MissingKernel_RefusedByTheSkeletonAndNothingKeepsRunning()
    {
        var vm = _scratch.Vm("fc-nokernel", s => s with { Kernel = s.Kernel with { Image = "/nonexistent/vmlinux" } });

        var act = () => _driver.StartAsync(vm);

        var ex = (await act.Should().ThrowAsync<DriverException>()).Which;
        ex.Message.Should().Be("kernel image not found: /nonexistent/vmlinux");
        ex.Reason.Should().Be("KernelNotFound");
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
        File.Exists(Path.Combine(_scratch.VmDirectory(vm), "api.sock")).Should().BeFalse();
        System.Diagnostics.Process.GetProcesses().Select(p => p.Id).Where(HostProcess.IsAlive)
            .Any(p => HostProcess.CommandLine(p).Any(a => a.Contains(_scratch.VmDirectory(vm), StringComparison.Ordinal)))
            .Should().BeFalse("a failed start kills the half-configured firecracker");
    }

    [Test]
    public async Task Start_Twice_IsIdempotent()
    {
        var vm = _scratch.Vm("fc-twice");

        var first = await _driver.StartAsync(vm);
        var second = await _driver.StartAsync(vm);

        second.Pid.Should().Be(first.Pid);
        second.State.Should().Be(LiveState.Running);
    }

    [Test]
    public async Task Inspect_AfterSigkill_ReportsExitedCrashed_AndStopClearsLeftovers()
    {
        var vm = _scratch.Vm("fc-crash");
        var started = await _driver.StartAsync(vm);

        HostProcess.Signal(started.Pid!.Value, HostProcess.SigKill);
        await Eventually.TrueAsync(() => !HostProcess.IsAlive(started.Pid.Value), TimeSpan.FromSeconds(30), "the stand-in to die");

        var live = await _driver.InspectAsync(vm);
        live.State.Should().Be(LiveState.Exited);
        live.Exit.Should().Be(ExitKind.Crashed);

        await _driver.StopAsync(vm, TimeSpan.Zero);
        File.Exists(Path.Combine(_scratch.VmDirectory(vm), "api.sock")).Should().BeFalse();
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
    }

    [Test]
    public async Task Inspect_GuestPanicked_ReportsCrashedWithThePanicLineFromTheConsole()
    {
        // The stand-in's guest panics after boot; with panic=1 reboot=k the guest reboots and firecracker exits,
        // which from outside is just a process that ended: only the console says why.
        var vm = _scratch.Vm("fc-panic", s => s with { Kernel = s.Kernel with { Cmdline = new Dictionary<string, string>(s.Kernel.Cmdline) { ["hypercore.standin.panic"] = "" } } });
        var started = await _driver.StartAsync(vm);
        await Eventually.TrueAsync(() => !HostProcess.IsAlive(started.Pid!.Value), TimeSpan.FromSeconds(60), "the panicking guest's firecracker to exit");

        var live = await _driver.InspectAsync(vm);

        live.State.Should().Be(LiveState.Exited);
        live.Exit.Should().Be(ExitKind.Crashed);
        live.Detail.Should().Be("guest kernel panic: Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100");
    }

    [Test]
    public async Task List_NewDriverInstance_AdoptsTheRunningVmWithTheSamePid()
    {
        var vm = _scratch.Vm("fc-adopt");
        var started = await _driver.StartAsync(vm);
        await _driver.PauseAsync(vm);

        var restarted = NewDriver(); // a new daemon: nothing in memory
        var found = await restarted.ListAsync();

        var adopted = found.Should().ContainSingle(i => i.Uid == vm.Uid).Which;
        adopted.Pid.Should().Be(started.Pid);
        adopted.State.Should().Be(LiveState.Paused);
        await restarted.ResumeAsync(vm);
        (await restarted.InspectAsync(vm)).State.Should().Be(LiveState.Running);
    }

    [Test]
    public async Task List_RecordWhosePidWasReused_IsNotAdopted()
    {
        var vm = _scratch.Vm("fc-reuse");
        var started = await _driver.StartAsync(vm);
        var dir = new VmDirectory(_scratch.RuntimeDirectory, vm.Uid);
        dir.WriteRecord(dir.ReadRecord()! with { PidStartTicks = 1 }); // as if the pid now belonged to another process

        var found = await NewDriver().ListAsync();

        found.Should().NotContain(i => i.Uid == vm.Uid);
        HostProcess.IsAlive(started.Pid!.Value).Should().BeTrue();
    }

    [Test]
    public async Task Stop_GuestIgnoresCtrlAltDel_KillsAfterTheGracePeriod()
    {
        var vm = _scratch.Vm("fc-stubborn", s => s with
        {
            Kernel = s.Kernel with { Cmdline = new Dictionary<string, string> { ["console"] = "ttyS0", ["hypercore.standin.ignore_ctrlaltdel"] = "" } },
        });
        var started = await _driver.StartAsync(vm);

        var watch = Stopwatch.StartNew();
        await _driver.StopAsync(vm, TimeSpan.FromSeconds(2));

        watch.Elapsed.Should().BeGreaterThanOrEqualTo(TimeSpan.FromSeconds(2));
        HostProcess.IsAlive(started.Pid!.Value).Should().BeFalse();
        Eventually.Read(started.ConsoleLogPath!).Should().NotContain("reboot: Restarting system");
    }

    [Test]
    public async Task Stop_PausedVm_ResumesThenPowersOffGracefully()
    {
        var vm = _scratch.Vm("fc-paused-stop");
        var started = await _driver.StartAsync(vm);
        await _driver.PauseAsync(vm);

        await _driver.StopAsync(vm, TimeSpan.FromSeconds(30));

        HostProcess.IsAlive(started.Pid!.Value).Should().BeFalse();
        Eventually.Read(started.ConsoleLogPath!).Should().Contain("reboot: Restarting system");
    }

    [Test]
    public async Task Pause_NotRunning_ThrowsDriverException()
    {
        var act = () => _driver.PauseAsync(_scratch.Vm("fc-absent"));

        (await act.Should().ThrowAsync<DriverException>()).Which.Message.Should().Contain("no firecracker process is running");
    }

    [Test]
    public async Task CreateSnapshot_RunningVm_WritesStateAndMemoryFilesAndKeepsItRunning()
    {
        var vm = _scratch.Vm("fc-snap");
        await _driver.StartAsync(vm);
        var target = Path.Combine(_scratch.Root, "snap");

        await _driver.CreateSnapshotAsync(vm, target);

        File.Exists(Path.Combine(target, "vmstate")).Should().BeTrue();
        File.Exists(Path.Combine(target, "memory")).Should().BeTrue();
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
    }
}

using Hypercore.Testing;
using System.Diagnostics;
using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.CloudHypervisor;

/// <summary>The Cloud Hypervisor driver against the cloud-hypervisor stand-in.</summary>
[TestFixture]
[NonParallelizable]
public sealed class CloudHypervisorDriverTests
{
    private Scratch _scratch = null!;
    private CloudHypervisorDriver _driver = null!;

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

    private CloudHypervisorDriver NewDriver(Action<CloudHypervisorOptions>? change = null)
    {
        var options = new CloudHypervisorOptions
        {
            BinaryPath = StandIns.CloudHypervisor,
            RuntimeDirectory = _scratch.RuntimeDirectory,
            RequireKvm = false,
            StartTimeout = TimeSpan.FromSeconds(60),
        };
        change?.Invoke(options);
        return new CloudHypervisorDriver(Options.Create(options), TimeProvider.System, NullLogger<CloudHypervisorDriver>.Instance);
    }

    private string Socket(MicroVm vm) => Path.Combine(_scratch.VmDirectory(vm), "api.sock");

    [Test]
    public async Task CheckAvailability_MissingBinary_ReportsUnavailableNamingThePath()
    {
        var availability = await NewDriver(o => o.BinaryPath = "/nonexistent/hypercore/cloud-hypervisor").CheckAvailabilityAsync();

        availability.Available.Should().BeFalse();
        availability.Detail.Should().Be("cloud-hypervisor binary not found: tried /nonexistent/hypercore/cloud-hypervisor");
    }

    [Test]
    public async Task CheckAvailability_Again_ReusesTheAnswerUntilTheBinaryChanges()
    {
        // Issue 15 (alloc7): the reconciler asks on every pass; the same binary at the same version gets the same
        // answer (task and text) instead of a new one, and a changed or removed binary is still seen at the next call.
        var binary = _scratch.File("cloud-hypervisor", "#!/bin/sh\necho 'cloud-hypervisor v99.0.0'\n"); // all availability runs
        File.SetUnixFileMode(binary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var driver = NewDriver(o => o.BinaryPath = binary);
        (await driver.CheckAvailabilityAsync()).Detail.Should().Be($"cloud-hypervisor v99.0.0 ({binary})"); // runs --version once

        var second = driver.CheckAvailabilityAsync();
        var third = driver.CheckAvailabilityAsync();
        third.Should().BeSameAs(second);
        (await third).Available.Should().BeTrue();

        File.SetLastWriteTimeUtc(binary, DateTime.UtcNow.AddMinutes(1)); // replaced: --version runs again
        var afterChange = driver.CheckAvailabilityAsync();
        afterChange.Should().NotBeSameAs(third);
        (await afterChange).Available.Should().BeTrue();

        File.Delete(binary);
        var gone = await driver.CheckAvailabilityAsync();
        gone.Available.Should().BeFalse();
        gone.Detail.Should().Be($"cloud-hypervisor binary not found: tried {binary}");
    }

    [Test]
    public async Task CheckAvailability_StandIn_ReportsVersion()
    {
        var availability = await _driver.CheckAvailabilityAsync();

        availability.Available.Should().BeTrue(availability.Detail);
        availability.Detail.Should().Contain("cloud-hypervisor v41.0.0");
    }

    [Test]
    public async Task Lifecycle_StartPauseResumeStopStartCleanup_LeavesNothingBehind()
    {
        Privileges.RequireRoot("creating tap devices");

        var vm = _scratch.Vm("ch-life", s => s with { Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0" }] });
        var tap = TapDevices.TapName(vm.Uid, 0);

        var started = await _driver.StartAsync(vm);

        started.State.Should().Be(LiveState.Running);
        var pid = started.Pid!.Value;
        HostProcess.CommandLine(pid).Should().Contain(["--api-socket", $"path={Socket(vm)}"]);
        TapDevices.Exists(tap).Should().BeTrue();
        Eventually.Read(started.ConsoleLogPath!).Should().Contain("HYPERCORE-GUEST-READY", "the serial console is written to console.log (serial mode File)");
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);

        await _driver.PauseAsync(vm);
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.Paused);
        await _driver.ResumeAsync(vm);
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);

        var watch = Stopwatch.StartNew();
        await _driver.StopAsync(vm, TimeSpan.FromSeconds(30));
        watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(20), "the power button makes the guest power off before the grace period ends");
        HostProcess.IsAlive(pid).Should().BeFalse();
        Eventually.Read(started.ConsoleLogPath!).Should().Contain("reboot: Power down");
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
        File.Exists(Socket(vm)).Should().BeFalse();
        File.Exists(Socket(vm) + ".lock").Should().BeFalse();
        TapDevices.Exists(tap).Should().BeFalse();

        var again = await _driver.StartAsync(vm);
        again.State.Should().Be(LiveState.Running);
        again.Pid.Should().NotBe(pid);

        await _driver.CleanupAsync(vm);
        HostProcess.IsAlive(again.Pid!.Value).Should().BeFalse();
        Directory.Exists(_scratch.VmDirectory(vm)).Should().BeFalse();
        TapDevices.Exists(tap).Should().BeFalse();
        await _driver.CleanupAsync(vm);
    }

    [Test]
    public async Task Start_RootPartitionId_BootsWithRootPartuuidOnTheCommandLine()
    {
        var vm = _scratch.Vm("ch-partuuid", s => s with { RootVolume = s.RootVolume! with { PartitionId = "6c2a6b1e-01" } });

        await _driver.StartAsync(vm);

        using var api = new UnixSocketApi(Socket(vm), new ApiPolicy(TimeSpan.FromSeconds(10), 3, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)), TimeProvider.System);
        var info = (await api.GetAsync("/api/v1/vm.info", default)).Json!;
        info["config"]!["payload"]!["cmdline"]!.GetValue<string>().Should().Be("console=ttyS0 panic=1 reboot=k root=PARTUUID=6c2a6b1e-01");
    }

    [Test]
    public async Task Start_SendsVmConfigWithPayloadCpusMemoryDisksNetAndSerialFile()
    {
        var vm = _scratch.Vm("ch-config", s => s with { AdditionalVolumes = [new VolumeSpec { Id = "data", HostPath = _scratch.File("data.img", "d"), IsReadOnly = true }] });

        await _driver.StartAsync(vm);

        using var api = new UnixSocketApi(Socket(vm), new ApiPolicy(TimeSpan.FromSeconds(10), 3, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)), TimeProvider.System);
        var info = (await api.GetAsync("/api/v1/vm.info", default)).Json!;
        info["state"]!.GetValue<string>().Should().Be("Running");
        var config = info["config"]!;
        config["payload"]!["kernel"]!.GetValue<string>().Should().Be(_scratch.Kernel);
        config["payload"]!["initramfs"]!.GetValue<string>().Should().Be(_scratch.Initrd);
        config["payload"]!["cmdline"]!.GetValue<string>().Should().Be("console=ttyS0 panic=1 reboot=k");
        config["cpus"]!["boot_vcpus"]!.GetValue<int>().Should().Be(2);
        config["memory"]!["size"]!.GetValue<long>().Should().Be(256L * 1024 * 1024);
        config["disks"]!.AsArray().Select(d => d!["path"]!.GetValue<string>()).Should().Equal(_scratch.RootDisk, _scratch.File("data.img", "d"));
        config["disks"]![1]!["readonly"]!.GetValue<bool>().Should().BeTrue();
        config["serial"]!["mode"]!.GetValue<string>().Should().Be("File");
        config["serial"]!["file"]!.GetValue<string>().Should().Be(Path.Combine(_scratch.VmDirectory(vm), "console.log"));
        config["console"]!["mode"]!.GetValue<string>().Should().Be("Off");
    }

    [Test]
    public async Task Start_Metadata_AttachesAReadOnlyCidataSeedDiskThatCleanupRemoves()
    {
        var vm = _scratch.Vm("ch-seed", s => s with
        {
            Metadata = new Dictionary<string, string> { ["user-data"] = "#!/bin/sh\necho seeded\n", ["x-role"] = "db" },
        });

        await _driver.StartAsync(vm);

        var seed = Path.Combine(_scratch.VmDirectory(vm), "cidata.img");
        using (var api = new UnixSocketApi(Socket(vm), new ApiPolicy(TimeSpan.FromSeconds(10), 3, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)), TimeProvider.System))
        {
            var disks = (await api.GetAsync("/api/v1/vm.info", default)).Json!["config"]!["disks"]!.AsArray();
            disks.Select(d => d!["path"]!.GetValue<string>()).Should().Equal(_scratch.RootDisk, seed);
            disks[1]!["readonly"]!.GetValue<bool>().Should().BeTrue("the guest must not write the seed");
            disks[1]!["id"]!.GetValue<string>().Should().Be("cidata");
        }

        var contents = Hypercore.Testing.CidataDisk.Read(seed);
        contents.Label.Should().Be("cidata");
        contents.Files.Keys.Should().BeEquivalentTo("meta-data", "user-data", "x-role");
        contents.Files["meta-data"].Should().Be($"instance-id: {vm.Uid}\nlocal-hostname: ch-seed\n");
        contents.Files["user-data"].Should().Be("#!/bin/sh\necho seeded\n");

        await _driver.CleanupAsync(vm);

        File.Exists(seed).Should().BeFalse();
        Directory.Exists(_scratch.VmDirectory(vm)).Should().BeFalse();
    }

    [Test]
    public async Task Start_AgainWithoutMetadata_LeavesNoSeedDiskBehind()
    {
        var vm = _scratch.Vm("ch-reseed", s => s with { Metadata = new Dictionary<string, string> { ["user-data"] = "#!/bin/sh\n" } });
        var seed = Path.Combine(_scratch.VmDirectory(vm), "cidata.img");
        await _driver.StartAsync(vm);
        File.Exists(seed).Should().BeTrue();
        await _driver.StopAsync(vm, TimeSpan.Zero);

        await _driver.StartAsync(vm with { Spec = vm.Spec with { Metadata = new Dictionary<string, string>() } });

        File.Exists(seed).Should().BeFalse("a seed the spec no longer asks for is not kept");
        using var api = new UnixSocketApi(Socket(vm), new ApiPolicy(TimeSpan.FromSeconds(10), 3, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)), TimeProvider.System);
        (await api.GetAsync("/api/v1/vm.info", default)).Json!["config"]!["disks"]!.AsArray().Should().ContainSingle();
    }

    [Test]
    public async Task Start_MetadataThatBypassedTheApi_RefusedAsInvalidMetadataBeforeAnyProcessStarts()
    {
        var vm = _scratch.Vm("ch-badmeta", s => s with { Metadata = new Dictionary<string, string> { ["meta-data"] = "- not\n- a mapping\n" } });

        var act = () => _driver.StartAsync(vm);

        var ex = (await act.Should().ThrowAsync<DriverException>()).Which;
        ex.Reason.Should().Be("InvalidMetadata");
        ex.Message.Should().Contain("metadata[\"meta-data\"] is not a YAML mapping");
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
        File.Exists(Path.Combine(_scratch.VmDirectory(vm), "cidata.img")).Should().BeFalse();
    }

    [Test]
    public void Capabilities_IncludeTheMetadataService() =>
        _driver.Capabilities.Should().HaveFlag(DriverCapabilities.MetadataService, "spec.metadata reaches the guest on a seed disk");

    [Test]
    public async Task Start_MissingKernel_RefusedByTheSkeletonBeforeAnyProcessStarts()
    {
        var vm = _scratch.Vm("ch-nokernel", s => s with { Kernel = s.Kernel with { Image = "/nonexistent/vmlinux" } });

        var act = () => _driver.StartAsync(vm);

        var ex = (await act.Should().ThrowAsync<DriverException>()).Which;
        ex.Reason.Should().Be("KernelNotFound");
        ex.Message.Should().Be("kernel image not found: /nonexistent/vmlinux");
        File.Exists(Path.Combine(_scratch.VmDirectory(vm), "vmm.log")).Should().BeFalse("no cloud-hypervisor was launched");
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
        File.Exists(Socket(vm)).Should().BeFalse();
    }

    [Test]
    public async Task Inspect_AfterSigkill_ReportsExitedCrashed()
    {
        var vm = _scratch.Vm("ch-crash");
        var started = await _driver.StartAsync(vm);

        HostProcess.Signal(started.Pid!.Value, HostProcess.SigKill);
        await Eventually.TrueAsync(() => !HostProcess.IsAlive(started.Pid.Value), TimeSpan.FromSeconds(30), "the stand-in to die");

        var live = await _driver.InspectAsync(vm);
        live.State.Should().Be(LiveState.Exited);
        live.Exit.Should().Be(ExitKind.Crashed);
        await _driver.StopAsync(vm, TimeSpan.Zero);
        File.Exists(Socket(vm)).Should().BeFalse();
    }

    [Test]
    public async Task List_NewDriverInstance_AdoptsTheRunningVmWithTheSamePid()
    {
        var vm = _scratch.Vm("ch-adopt");
        var started = await _driver.StartAsync(vm);

        var found = await NewDriver().ListAsync();

        var adopted = found.Should().ContainSingle(i => i.Uid == vm.Uid).Which;
        adopted.Pid.Should().Be(started.Pid);
        adopted.State.Should().Be(LiveState.Running);
    }

    [Test]
    public async Task Stop_GuestIgnoresPowerButton_ShutsTheVmmDownAfterTheGracePeriod()
    {
        var vm = _scratch.Vm("ch-stubborn", s => s with
        {
            Kernel = s.Kernel with { Cmdline = new Dictionary<string, string> { ["console"] = "ttyS0", ["hypercore.standin.ignore_acpi"] = "" } },
        });
        var started = await _driver.StartAsync(vm);

        var watch = Stopwatch.StartNew();
        await _driver.StopAsync(vm, TimeSpan.FromSeconds(2));

        watch.Elapsed.Should().BeGreaterThanOrEqualTo(TimeSpan.FromSeconds(2));
        HostProcess.IsAlive(started.Pid!.Value).Should().BeFalse();
        Eventually.Read(Path.Combine(_scratch.VmDirectory(vm), "vmm.log")).Should().Contain("VMM shutdown requested", "vm.shutdown then vmm.shutdown end the VMM without SIGKILL");
    }

    [Test]
    public async Task CreateSnapshot_RunningVm_WritesSnapshotAndKeepsItRunning()
    {
        var vm = _scratch.Vm("ch-snap");
        await _driver.StartAsync(vm);
        var target = Path.Combine(_scratch.Root, "snap");

        await _driver.CreateSnapshotAsync(vm, target);

        File.Exists(Path.Combine(target, "config.json")).Should().BeTrue();
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
    }
}

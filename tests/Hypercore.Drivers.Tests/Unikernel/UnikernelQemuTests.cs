using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Unikernel;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Unikernel;

/// <summary>The unikernel driver's direct path: real QEMU (TCG) booting a real disk image.</summary>
[TestFixture]
[NonParallelizable]
public sealed class UnikernelQemuTests
{
    private static readonly TimeSpan GuestTimeout = TimeSpan.FromSeconds(120);

    private Scratch _scratch = null!;
    private UnikernelDriver _driver = null!;
    private string _image = null!;

    [SetUp]
    public void SetUp()
    {
        _scratch = new Scratch();
        _image = BootSectorImage.Write(Path.Combine(_scratch.Images, "app.img"));
        _driver = NewDriver();
    }

    [TearDown]
    public async Task TearDown() => await _scratch.DisposeAsync();

    private UnikernelDriver NewDriver(Action<UnikernelOptions>? change = null)
    {
        var options = new UnikernelOptions
        {
            RuntimeDirectory = _scratch.RuntimeDirectory,
            Accelerator = "tcg", // nested KVM hangs guests on these machines
            StartTimeout = TimeSpan.FromSeconds(60),
        };
        change?.Invoke(options);
        return new UnikernelDriver(Options.Create(options), TimeProvider.System, NullLogger<UnikernelDriver>.Instance);
    }

    private MicroVm UnikernelVm(string id, Func<MicroVmSpec, MicroVmSpec>? change = null) =>
        _scratch.Vm(id, s =>
        {
            var spec = s with { Kernel = new KernelSpec { Image = _image }, Initrd = null, RootVolume = null, MemoryInMb = 64, Vcpu = 1 };
            return change is null ? spec : change(spec);
        });

    [Test]
    public async Task CheckAvailability_MissingQemu_ReportsUnavailableNamingThePath()
    {
        var availability = await NewDriver(o => o.QemuPath = "/nonexistent/qemu-system-x86_64").CheckAvailabilityAsync();

        availability.Available.Should().BeFalse();
        availability.Detail.Should().Be("qemu binary not found: tried /nonexistent/qemu-system-x86_64");
    }

    [Test]
    public async Task CheckAvailability_Qemu_ReportsDirectMode()
    {
        var availability = await _driver.CheckAvailabilityAsync();

        availability.Available.Should().BeTrue(availability.Detail);
        availability.Detail.Should().Contain("QEMU emulator").And.Contain("direct boot");
        _driver.Mode.Should().Be("qemu");
        _driver.Capabilities.Should().HaveFlag(DriverCapabilities.Pause).And.HaveFlag(DriverCapabilities.GracefulStop)
            .And.NotHaveFlag(DriverCapabilities.Initrd).And.NotHaveFlag(DriverCapabilities.MetadataService);
    }

    [Test]
    public async Task Lifecycle_BootPauseResumeStopCleanup_RunsTheImageAndLeavesNothingBehind()
    {
        var vm = UnikernelVm("uk-life");

        var started = await _driver.StartAsync(vm);

        started.State.Should().Be(LiveState.Running);
        var pid = started.Pid!.Value;
        await Eventually.TrueAsync(() => Eventually.Read(started.ConsoleLogPath!).Contains(BootSectorImage.Marker), GuestTimeout, "the image to print on the serial console");

        await _driver.PauseAsync(vm);
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.Paused);
        await _driver.ResumeAsync(vm);
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);

        await _driver.StopAsync(vm, TimeSpan.FromSeconds(1)); // the boot sector has no ACPI: QMP quit after the grace
        HostProcess.IsAlive(pid).Should().BeFalse();
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
        File.Exists(Path.Combine(_scratch.VmDirectory(vm), "qmp.sock")).Should().BeFalse();

        await _driver.CleanupAsync(vm);
        Directory.Exists(_scratch.VmDirectory(vm)).Should().BeFalse();
    }

    [Test]
    public async Task Start_RootVolumeAsImage_BootsIt()
    {
        var vm = UnikernelVm("uk-rootvol", s => s with
        {
            Kernel = new KernelSpec { Image = "nanos" },
            RootVolume = new VolumeSpec { Id = "root", HostPath = _image },
        });

        var started = await _driver.StartAsync(vm);

        await Eventually.TrueAsync(() => Eventually.Read(started.ConsoleLogPath!).Contains(BootSectorImage.Marker), GuestTimeout, "the image to boot from root_volume");
    }

    [Test]
    public async Task Start_ImageMissing_ThrowsImageNotFound()
    {
        var vm = UnikernelVm("uk-noimg", s => s with { Kernel = new KernelSpec { Image = "/nonexistent/app.img" } });

        var act = () => _driver.StartAsync(vm);

        var ex = (await act.Should().ThrowAsync<DriverException>()).Which;
        ex.Reason.Should().Be("ImageNotFound");
        ex.Message.Should().Contain("/nonexistent/app.img");
    }

    [Test]
    public async Task Start_NoImageInSpec_ExplainsTheMapping()
    {
        var vm = UnikernelVm("uk-vmlinux", s => s with { Kernel = new KernelSpec { Image = _scratch.Kernel } });

        var act = () => _driver.StartAsync(vm);

        (await act.Should().ThrowAsync<DriverException>()).Which.Message.Should().Contain("set kernel.image to a .img file or root_volume.host_path");
    }

    [Test]
    public async Task Inspect_AfterSigkill_ReportsExitedCrashed()
    {
        var vm = UnikernelVm("uk-crash");
        var started = await _driver.StartAsync(vm);

        HostProcess.Signal(started.Pid!.Value, HostProcess.SigKill);
        await Eventually.TrueAsync(() => !HostProcess.IsAlive(started.Pid.Value), TimeSpan.FromSeconds(30), "qemu to die");

        var live = await _driver.InspectAsync(vm);
        live.State.Should().Be(LiveState.Exited);
        live.Exit.Should().Be(ExitKind.Crashed);
    }

    [Test]
    public async Task List_NewDriverInstance_AdoptsTheRunningVmWithTheSamePid()
    {
        var vm = UnikernelVm("uk-adopt");
        var started = await _driver.StartAsync(vm);

        var adopted = (await NewDriver().ListAsync()).Should().ContainSingle(i => i.Uid == vm.Uid).Which;

        adopted.Pid.Should().Be(started.Pid);
        adopted.State.Should().Be(LiveState.Running);
    }

    [Test]
    public void Arguments_MapImageVolumesAndTapsToVirtioDevices()
    {
        var data = _scratch.File("data.img", "d");
        var vm = UnikernelVm("uk-args", s => s with
        {
            AdditionalVolumes = [new VolumeSpec { Id = "data", HostPath = data, IsReadOnly = true }],
            Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", GuestMac = "02:00:00:00:00:09" }],
        });
        var backend = new QemuBackend(new UnikernelOptions { Accelerator = "tcg" }, TimeProvider.System, NullLogger.Instance);
        var prepared = new PreparedSpec
        {
            Vm = vm,
            KernelPath = _image,
            Volumes = [new PreparedVolume("data", data, IsReadOnly: true, IsRoot: false, IsScratch: false)],
            Nics = [new PreparedNic("eth0", "hctap0", "02:00:00:00:00:09", vm.Spec.Interfaces[0])],
        };

        var args = backend.Arguments(prepared, "/run/q.sock", "/run/console.log");

        string.Join(' ', args).Should()
            .Contain("-machine q35 -accel tcg")
            .And.Contain($"-drive file={_image},format=raw,if=none,id=boot -device virtio-blk-pci,drive=boot,bootindex=0")
            .And.Contain($"-drive file={data},format=raw,if=none,id=disk0,readonly=on")
            .And.Contain("-netdev tap,id=net0,ifname=hctap0,script=no,downscript=no -device virtio-net-pci,netdev=net0,mac=02:00:00:00:00:09")
            .And.Contain("-chardev file,id=console0,path=/run/console.log,append=on -serial chardev:console0 -qmp unix:/run/q.sock,server=on,wait=off");
    }
}

using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Unikernel;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Unikernel;

/// <summary>The unikernel driver's ops path against the ops stand-in (which, like ops onprem, starts QEMU).</summary>
[TestFixture]
[NonParallelizable]
public sealed class UnikernelOpsTests
{
    private Scratch _scratch = null!;
    private UnikernelDriver _driver = null!;
    private string _image = null!;
    private string _opsHome = null!;

    [SetUp]
    public void SetUp()
    {
        _scratch = new Scratch();
        _image = BootSectorImage.Write(Path.Combine(_scratch.Images, "app.img"));
        _opsHome = Path.Combine(_scratch.Root, "ops-home");
        _driver = NewDriver();
    }

    [TearDown]
    public async Task TearDown() => await _scratch.DisposeAsync();

    private UnikernelDriver NewDriver(string? opsPath = null) =>
        new(Options.Create(new UnikernelOptions
        {
            RuntimeDirectory = _scratch.RuntimeDirectory,
            OpsPath = opsPath ?? StandIns.Ops,
            OpsHome = _opsHome,
            StartTimeout = TimeSpan.FromSeconds(60),
        }), TimeProvider.System, NullLogger<UnikernelDriver>.Instance);

    private MicroVm UnikernelVm(string id) =>
        _scratch.Vm(id, s => s with { Kernel = new KernelSpec { Image = _image }, Initrd = null, RootVolume = null, MemoryInMb = 64, Vcpu = 1 });

    [Test]
    public async Task CheckAvailability_MissingOps_ReportsUnavailableNamingThePath()
    {
        var availability = await NewDriver("/nonexistent/bin/ops").CheckAvailabilityAsync();

        availability.Available.Should().BeFalse();
        availability.Detail.Should().Be("ops binary not found: tried /nonexistent/bin/ops");
    }

    [Test]
    public async Task CheckAvailability_Ops_ReportsVersionAndOpsHome()
    {
        var availability = await _driver.CheckAvailabilityAsync();

        availability.Available.Should().BeTrue(availability.Detail);
        availability.Detail.Should().Contain("Ops version").And.Contain(_opsHome);
        _driver.Mode.Should().Be("ops");
        _driver.Capabilities.Should().Be(DriverCapabilities.None, "ops has no pause, graceful stop, taps or extra disks for onprem instances");
    }

    [Test]
    public async Task Lifecycle_CreateListAdoptDelete_ThroughOps()
    {
        var vm = UnikernelVm("uk-ops");
        var name = "hypercore-" + vm.Uid;

        var started = await _driver.StartAsync(vm);

        started.State.Should().Be(LiveState.Running);
        var pid = started.Pid!.Value;
        HostProcess.CommandLine(pid).Should().Contain(a => a.Contains(Path.Combine(_opsHome, "images", name + ".img"), StringComparison.Ordinal),
            "ops starts QEMU on the image linked into OPS_HOME/images");
        Eventually.Read(Path.Combine(_opsHome, "instances", pid.ToString(System.Globalization.CultureInfo.InvariantCulture))).Should().Contain($"\"instance\":\"{name}\"");
        await Eventually.TrueAsync(() => Eventually.Read(Path.Combine(_opsHome, "logs", name + ".log")).Contains(BootSectorImage.Marker), TimeSpan.FromSeconds(120), "the image to boot under ops");
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);

        var adopted = (await NewDriver().ListAsync()).Should().ContainSingle(i => i.Uid == vm.Uid).Which;
        adopted.Pid.Should().Be(pid);

        await _driver.StopAsync(vm, TimeSpan.FromSeconds(5));
        HostProcess.IsAlive(pid).Should().BeFalse();
        Directory.EnumerateFiles(Path.Combine(_opsHome, "instances")).Should().BeEmpty("ops instance delete removes the record");
        File.Exists(Path.Combine(_opsHome, "images", name + ".img")).Should().BeFalse();
        (await _driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);

        await _driver.CleanupAsync(vm);
        Directory.Exists(_scratch.VmDirectory(vm)).Should().BeFalse();
    }

    [Test]
    public async Task Inspect_QemuKilledBehindOpsBack_ReportsExitedCrashed()
    {
        var vm = UnikernelVm("uk-ops-crash");
        var started = await _driver.StartAsync(vm);

        HostProcess.Signal(started.Pid!.Value, HostProcess.SigKill);
        await Eventually.TrueAsync(() => !HostProcess.IsAlive(started.Pid.Value), TimeSpan.FromSeconds(30), "qemu to die");

        var live = await _driver.InspectAsync(vm);
        live.State.Should().Be(LiveState.Exited);
        live.Exit.Should().Be(ExitKind.Crashed);
        (await NewDriver().ListAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Pause_ThroughOps_IsUnsupported()
    {
        var act = () => _driver.PauseAsync(UnikernelVm("uk-ops-pause"));

        (await act.Should().ThrowAsync<DriverException>()).Which.Reason.Should().Be(Conditions.ReasonUnsupported);
    }

    [Test]
    public async Task Start_ImageMissing_FailsBeforeCallingOps()
    {
        var vm = _scratch.Vm("uk-ops-noimg", s => s with { Kernel = new KernelSpec { Image = "/nonexistent/app.img" }, Initrd = null, RootVolume = null });

        var act = () => _driver.StartAsync(vm);

        (await act.Should().ThrowAsync<DriverException>()).Which.Reason.Should().Be("ImageNotFound");
        var instances = Path.Combine(_opsHome, "instances");
        (Directory.Exists(instances) ? Directory.EnumerateFiles(instances) : []).Should().BeEmpty("no instance was created");
    }
}

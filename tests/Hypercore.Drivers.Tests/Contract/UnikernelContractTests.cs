using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Unikernel;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Contract;

/// <summary>
/// The unikernel driver on its direct path: real QEMU (TCG) booting a real MBR disk image. The image is the "kernel"
/// here (kernel.image names the .img); the hypervisor's view is QEMU's own command line.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class UnikernelContractTests : DriverContractTests
{
#pragma warning disable NUnit1032 // disposed in DisposeBedAsync, which the base class's [TearDown] calls
    private Scratch Bed { get; set; } = null!;
#pragma warning restore NUnit1032
    private string _image = null!;

    protected override string MissingKernelReason => "ImageNotFound";

    protected override string MissingKernelFileName => "app.img";

    /// <summary>The test image is a boot sector that prints and halts: no ACPI, so it cannot power off on request.</summary>
    protected override bool GuestPowersOffOnRequest => false;

    protected override Task SetUpBedAsync()
    {
        Bed = new Scratch();
        _image = BootSectorImage.Write(Path.Combine(Bed.Images, "app.img"));
        return Task.CompletedTask;
    }

    protected override async Task DisposeBedAsync() => await Bed.DisposeAsync();

    protected override IHypervisorDriver CreateDriver() => new UnikernelDriver(
        Options.Create(new UnikernelOptions
        {
            RuntimeDirectory = Bed.RuntimeDirectory,
            Accelerator = "tcg", // nested KVM hangs guests on these machines
            StartTimeout = TimeSpan.FromSeconds(120),
        }),
        TimeProvider.System,
        NullLogger<UnikernelDriver>.Instance);

    protected override MicroVm NewVm(string id, Func<MicroVmSpec, MicroVmSpec>? change = null) =>
        Bed.Vm(id, s =>
        {
            var spec = s with { Kernel = new KernelSpec { Image = _image }, Initrd = null, RootVolume = null, MemoryInMb = 64, Vcpu = 1 };
            return change is null ? spec : change(spec);
        });

    protected override string VmDirectory(MicroVm vm) => Bed.VmDirectory(vm);

    protected override (string Directory, string FileName) KernelInDirectory()
    {
        var directory = Directory.CreateDirectory(Path.Combine(Bed.Images, "named")).FullName;
        BootSectorImage.Write(Path.Combine(directory, "service.img"));
        return (directory, "service.img");
    }

    protected override string NewDiskFile(string name)
    {
        var path = Path.Combine(Bed.Images, name);
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        file.SetLength(1024 * 1024);
        return path;
    }

    /// <summary>QEMU's command line: the drive with id=boot is the image, every other -drive a disk.</summary>
    protected override Task<VmmView> ReadVmmAsync(MicroVm vm, VmRuntimeInfo info) =>
        Task.FromResult(ReadQemuCommandLine(info.Pid!.Value, o => o.GetValueOrDefault("id") == "boot"));
}

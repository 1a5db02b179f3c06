using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Contract;

/// <summary>Firecracker and Cloud Hypervisor share the stand-in bed: a <see cref="Scratch"/> area and the built stand-ins.</summary>
public abstract class StandInContractTests : DriverContractTests
{
    private static readonly ApiPolicy ReadBack = new(TimeSpan.FromSeconds(10), 3, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1));

    private protected Scratch Bed { get; private set; } = null!;

    protected override Task SetUpBedAsync()
    {
        Bed = new Scratch();
        return Task.CompletedTask;
    }

    protected override async Task DisposeBedAsync() => await Bed.DisposeAsync();

    protected override MicroVm NewVm(string id, Func<MicroVmSpec, MicroVmSpec>? change = null) => Bed.Vm(id, change);

    protected override string VmDirectory(MicroVm vm) => Bed.VmDirectory(vm);

    protected override (string Directory, string FileName) KernelInDirectory()
    {
        var directory = Directory.CreateDirectory(Path.Combine(Bed.Images, "named")).FullName;
        File.Copy(Bed.Kernel, Path.Combine(directory, "vmlinux-6.1"));
        return (directory, "vmlinux-6.1");
    }

    protected override string NewDiskFile(string name) => Bed.File(name, "disk " + name + "\n");

    /// <summary>The VMM's API on the VM's socket.</summary>
    protected UnixSocketApi Api(MicroVm vm) => new(Path.Combine(Bed.VmDirectory(vm), "api.sock"), ReadBack, TimeProvider.System);
}

[TestFixture]
[NonParallelizable]
public sealed class FirecrackerContractTests : StandInContractTests
{
    protected override IHypervisorDriver CreateDriver() => new FirecrackerDriver(
        Options.Create(new FirecrackerOptions
        {
            BinaryPath = StandIns.Firecracker,
            RuntimeDirectory = Bed.RuntimeDirectory,
            RequireKvm = false, // the stand-in needs no KVM (the check itself: KvmDeviceTests)
            StartTimeout = TimeSpan.FromSeconds(60),
        }),
        TimeProvider.System,
        NullLogger<FirecrackerDriver>.Instance);

    /// <summary>GET /vm/config: boot-source.kernel_image_path and drives[].{path_on_host, is_read_only}.</summary>
    protected override async Task<VmmView> ReadVmmAsync(MicroVm vm, VmRuntimeInfo info)
    {
        using var api = Api(vm);
        var config = (await api.GetAsync("/vm/config", default)).Json!;
        var disks = config["drives"]!.AsArray()
            .Select(d => new VmmDisk(d!["path_on_host"]!.GetValue<string>(), d["is_read_only"]!.GetValue<bool>()))
            .ToList();
        var taps = (config["network-interfaces"]?.AsArray() ?? []).Select(n => n!["host_dev_name"]!.GetValue<string>()).ToList();
        return new VmmView(config["boot-source"]!["kernel_image_path"]!.GetValue<string>(), disks, taps);
    }
}

[TestFixture]
[NonParallelizable]
public sealed class CloudHypervisorContractTests : StandInContractTests
{
    protected override IHypervisorDriver CreateDriver() => new CloudHypervisorDriver(
        Options.Create(new CloudHypervisorOptions
        {
            BinaryPath = StandIns.CloudHypervisor,
            RuntimeDirectory = Bed.RuntimeDirectory,
            RequireKvm = false, // the stand-in needs no KVM (the check itself: KvmDeviceTests)
            StartTimeout = TimeSpan.FromSeconds(60),
        }),
        TimeProvider.System,
        NullLogger<CloudHypervisorDriver>.Instance);

    /// <summary>GET vm.info: config.payload.kernel and config.disks[].{path, readonly}.</summary>
    protected override async Task<VmmView> ReadVmmAsync(MicroVm vm, VmRuntimeInfo info)
    {
        using var api = Api(vm);
        var config = (await api.GetAsync("/api/v1/vm.info", default)).Json!["config"]!;
        var disks = (config["disks"]?.AsArray() ?? [])
            .Select(d => new VmmDisk(d!["path"]!.GetValue<string>(), d["readonly"]?.GetValue<bool>() ?? false))
            .ToList();
        var taps = (config["net"]?.AsArray() ?? []).Select(n => n!["tap"]!.GetValue<string>()).ToList();
        return new VmmView(config["payload"]!["kernel"]!.GetValue<string>(), disks, taps);
    }
}

using Hypercore.MicroVms;

namespace Hypercore.Core.Tests.MicroVms;

/// <summary>
/// Issue 15 (alloc7): every Create is validated, and nearly every spec has no volumes, interfaces, ports, metadata,
/// command line, probes or placement. Those checks cost nothing then (the LINQ groupings, iterators and enumerators over
/// empty collections were ~1.2 KB per Create).
/// </summary>
public sealed class MicroVmSpecValidatorAllocationTests
{
    private static readonly MicroVmSpec Plain = new()
    {
        Id = "vm-1",
        Namespace = "bench",
        Vcpu = 1,
        MemoryInMb = 128,
        Kernel = new KernelSpec { Image = "/var/lib/hypercore/images/vmlinuz", Cmdline = System.Collections.ObjectModel.ReadOnlyDictionary<string, string>.Empty },
        Provider = "qemu",
    };

    [Test]
    public void Validate_APlainSpec_AllocatesOnlyItsEmptyErrorList()
    {
        MicroVmSpecValidator.Validate(Plain).Should().BeEmpty();

        const int calls = 200;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < calls; i++)
        {
            MicroVmSpecValidator.Validate(Plain);
        }

        var perCall = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)calls;
        perCall.Should().BeLessThanOrEqualTo(64, "only the (empty) list of problems is made for a spec with nothing to group or enumerate");
    }

    [Test]
    public void Validate_DuplicatesStillFound_WhenTheListsAreNotEmpty()
    {
        var spec = Plain with
        {
            RootVolume = new VolumeSpec { Id = "root", HostPath = "/r.img" },
            AdditionalVolumes = [new VolumeSpec { Id = "root", HostPath = "/d.img" }],
            Interfaces =
            [
                new NetworkInterfaceSpec { DeviceId = "eth0", Ports = [new PortForward(8080, 80, "tcp")] },
                new NetworkInterfaceSpec { DeviceId = "eth0", Ports = [new PortForward(8080, 81, "tcp")] },
            ],
        };

        MicroVmSpecValidator.Validate(spec).Should().Contain(
        [
            "volume id \"root\" is used more than once",
            "interface device_id \"eth0\" is used more than once",
            "host port tcp 8080 is forwarded more than once",
        ]);
    }
}

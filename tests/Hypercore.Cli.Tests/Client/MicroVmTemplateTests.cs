using Hypercore.Client;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Tests.Client;

public sealed class MicroVmTemplateTests
{
    [Test]
    public void ToSpec_Defaults_GiveDefaultImageOneCpuAnd128Mi()
    {
        new MicroVmTemplate { Name = "a" }.ToSpec().Should().Be(new MicroVMSpec
        {
            Id = "a",
            Namespace = "default",
            Vcpu = 1,
            MemoryInMb = 128,
            Kernel = new Kernel { Image = "default" },
        });
    }

    [Test]
    public void ToSpec_DiskAndNetwork_BecomeScratchVolumeAndTaps()
    {
        var spec = new MicroVmTemplate { Name = "a", DiskInMb = 10, NetworkInterfaces = 3 }.ToSpec();

        spec.AdditionalVolumes.Should().Equal(new Volume { Id = "disk0", SizeInMb = 10, Source = new VolumeSource() });
        spec.Interfaces.Select(i => (i.DeviceId, i.Type)).Should().Equal(
            ("eth0", NetworkInterface.Types.IfaceType.Tap), ("eth1", NetworkInterface.Types.IfaceType.Tap), ("eth2", NetworkInterface.Types.IfaceType.Tap));
    }
}

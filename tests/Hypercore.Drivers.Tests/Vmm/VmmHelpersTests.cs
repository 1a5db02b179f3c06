using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Tests.Vmm;

public sealed class VmmHelpersTests
{
    private static MicroVmSpec Spec(bool addNetworkConfig, params NetworkInterfaceSpec[] nics) => new()
    {
        Id = "vm",
        Kernel = new KernelSpec { Image = "/k", AddNetworkConfig = addNetworkConfig },
        Interfaces = nics,
    };

    [Test]
    public void KernelArgs_NoCmdline_UsesTheDefaults() =>
        KernelArgs.Build(Spec(false), "console=ttyS0 reboot=k").Should().Be("console=ttyS0 reboot=k");

    [Test]
    public void KernelArgs_AddNetworkConfig_AppendsOneIpArgumentPerStaticInterface() =>
        KernelArgs.Build(
                Spec(true,
                    new NetworkInterfaceSpec { DeviceId = "eth0", Address = "10.0.0.2/24", Gateway = "10.0.0.1" },
                    new NetworkInterfaceSpec { DeviceId = "eth1" }),
                "console=ttyS0")
            .Should().Be("console=ttyS0 ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off");

    [Test]
    public void KernelArgs_Nameservers_AreTheIpArgumentsDns0AndDns1() =>
        KernelArgs.Build(
                Spec(true,
                    new NetworkInterfaceSpec { DeviceId = "eth0", Address = "10.0.0.2/24", Gateway = "10.0.0.1", Nameservers = ["10.0.0.53", "10.0.0.54"] },
                    new NetworkInterfaceSpec { DeviceId = "eth1", Address = "10.1.0.2/16", Nameservers = ["10.1.0.53"] }),
                "console=ttyS0")
            .Should().Be("console=ttyS0 ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off:10.0.0.53:10.0.0.54 ip=10.1.0.2:::255.255.0.0::eth1:off:10.1.0.53");

    [Test]
    public void KernelArgs_RootPartitionId_ReplacesTheDefaultRootWithPartuuid()
    {
        var spec = Spec(false) with { RootVolume = new VolumeSpec { Id = "root", HostPath = "/r.img", PartitionId = "6c2a6b1e-01" } };

        KernelArgs.WithRootPartition("console=ttyS0 root=/dev/vda rw", spec).Should().Be("console=ttyS0 rw root=PARTUUID=6c2a6b1e-01");
        KernelArgs.WithRootPartition("console=ttyS0", spec).Should().Be("console=ttyS0 root=PARTUUID=6c2a6b1e-01");
        KernelArgs.WithRootPartition("console=ttyS0 root=/dev/vda", Spec(false)).Should().Be("console=ttyS0 root=/dev/vda");
        var ownRoot = spec with { Kernel = spec.Kernel with { Cmdline = new Dictionary<string, string> { ["root"] = "/dev/vdb1" } } };
        KernelArgs.WithRootPartition("root=/dev/vdb1", ownRoot).Should().Be("root=/dev/vdb1", "the spec's own root= wins");
    }

    [Test]
    public void TapName_FitsIfnamsizAndIsStablePerUid()
    {
        var uid = Guid.NewGuid().ToString();

        var name = TapDevices.TapName(uid, 3);

        name.Length.Should().BeLessThanOrEqualTo(15);
        name.Should().Be(TapDevices.TapName(uid, 3)).And.NotBe(TapDevices.TapName(uid, 2)).And.NotBe(TapDevices.TapName(Guid.NewGuid().ToString(), 3));
    }

    [Test]
    public void GuestMac_NotGiven_IsLocallyAdministeredUnicastAndStable()
    {
        var nic = new NetworkInterfaceSpec { DeviceId = "eth0" };

        var mac = TapDevices.GuestMac("uid-1", nic, 0);

        mac.Should().MatchRegex("^02(:[0-9a-f]{2}){5}$");
        TapDevices.GuestMac("uid-1", nic, 0).Should().Be(mac);
    }

    [Test]
    public void BinaryLocator_Path_TriesExactlyThatPath()
    {
        var (path, tried) = BinaryLocator.Resolve("/bin/sh");

        path.Should().Be("/bin/sh");
        tried.Should().Equal("/bin/sh");
    }

    [Test]
    public void HostProcess_OwnProcess_IsAliveWithAStableStartTime()
    {
        var pid = Environment.ProcessId;
        var ticks = HostProcess.StartTicks(pid);

        HostProcess.IsAlive(pid).Should().BeTrue();
        ticks.Should().NotBeNull();
        HostProcess.IsSameProcess(pid, ticks!.Value).Should().BeTrue();
        HostProcess.IsSameProcess(pid, ticks.Value + 1).Should().BeFalse();
        HostProcess.IsAlive(int.MaxValue).Should().BeFalse();
    }

    [Test]
    public void VmDirectory_UidWithSlash_IsRejected()
    {
        var act = () => new VmDirectory("/tmp", "../etc");

        act.Should().Throw<DriverException>().Which.Reason.Should().Be("InvalidUid");
    }
}

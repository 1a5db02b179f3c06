using Hypercore.MicroVms;

namespace Hypercore.Networking.Tests;

public sealed class PortSpecValidationTests
{
    private static MicroVmSpec Spec(params NetworkInterfaceSpec[] nics) =>
        new() { Id = "v", Kernel = new KernelSpec { Image = "/k" }, Interfaces = nics };

    [Test]
    public void Validate_SameHostPortTwice_IsRefused()
    {
        var errors = MicroVmSpecValidator.Validate(Spec(
            new NetworkInterfaceSpec { DeviceId = "eth0", Ports = [new PortForward(8080, 80)] },
            new NetworkInterfaceSpec { DeviceId = "eth1", Ports = [new PortForward(8080, 81)] }));

        errors.Should().ContainSingle(e => e.Contains("host port tcp 8080 is forwarded more than once"));
    }

    [Test]
    public void Validate_SameHostPortOnTcpAndUdp_IsAccepted()
    {
        var errors = MicroVmSpecValidator.Validate(Spec(
            new NetworkInterfaceSpec { DeviceId = "eth0", Ports = [new PortForward(53, 53, "tcp"), new PortForward(53, 53, "udp")] }));

        errors.Should().BeEmpty();
    }

    [TestCase(0, 80, "tcp", "between 1 and 65535")]
    [TestCase(8080, 70000, "tcp", "between 1 and 65535")]
    [TestCase(8080, 80, "sctp", "must be tcp or udp")]
    public void Validate_BadPort_IsRefusedNamingTheInterface(int host, int guest, string protocol, string message)
    {
        var errors = MicroVmSpecValidator.Validate(Spec(new NetworkInterfaceSpec { DeviceId = "eth0", Ports = [new PortForward(host, guest, protocol)] }));

        errors.Should().ContainSingle(e => e.Contains("interface \"eth0\"") && e.Contains(message));
    }

    [Test]
    public void Validate_PortsOnMacvtap_AreRefused()
    {
        var errors = MicroVmSpecValidator.Validate(Spec(
            new NetworkInterfaceSpec { DeviceId = "eth0", Type = InterfaceType.Macvtap, Ports = [new PortForward(8080, 80)] }));

        errors.Should().ContainSingle(e => e.Contains("only TAP interfaces join"));
    }

    [Test]
    public void Validate_MacvtapParentOnTap_IsRefused()
    {
        var errors = MicroVmSpecValidator.Validate(Spec(new NetworkInterfaceSpec { DeviceId = "eth0", Parent = "eth1" }));

        errors.Should().ContainSingle(e => e.Contains("macvtap_parent is only for MACVTAP"));
    }
}

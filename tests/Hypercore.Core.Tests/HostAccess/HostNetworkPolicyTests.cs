using Hypercore.HostAccess;
using Hypercore.MicroVms;

namespace Hypercore.Core.Tests.HostAccess;

/// <summary>
/// Which host networks a TAP interface may reach: bridges (none by default, the listed ones, the managed bridge when it is
/// on) and forwarded host ports (30000-32767 by default).
/// </summary>
public sealed class HostNetworkPolicyTests
{
    private static MicroVmSpec Spec(params NetworkInterfaceSpec[] nics) => new()
    {
        Id = "web1", Vcpu = 1, MemoryInMb = 128, Kernel = new KernelSpec { Image = "/var/lib/hypercore/images/default/vmlinuz" }, Interfaces = nics,
    };

    private static NetworkInterfaceSpec Tap(string id, string? bridge) => new() { DeviceId = id, Bridge = bridge };

    [Test]
    public void Default_RefusesEveryNamedBridge_SayingHowToAllowIt_AndLetsBareTapsThrough()
    {
        var list = new HostNetworkPolicy([]);

        var errors = list.Violations(Spec(Tap("eth0", null), Tap("eth1", "br0"), Tap("eth2", "")));

        errors.Should().Equal(
            "interfaces[1] \"eth1\": bridge \"br0\" is not one this node puts guests on (allowed: none); a bridge joins the guest to the " +
            "host network it carries, so to allow it on purpose add it to the vistarad setting network-allowed-bridges " +
            "(--network-allowed-bridges br0), or leave bridge out for a bare tap");
    }

    [Test]
    public void Listed_AllowsExactlyThoseNames()
    {
        var list = new HostNetworkPolicy(["br0", " virbr0 ", ""]);

        list.Violations(Spec(Tap("eth0", "br0"), Tap("eth1", "virbr0"))).Should().BeEmpty();
        var refusal = list.Violations(Spec(Tap("eth0", "BR0"), Tap("eth1", "docker0")));
        refusal.Should().HaveCount(2);
        refusal[1].Should().Contain("(allowed: br0,virbr0)").And.Contain("(--network-allowed-bridges br0,virbr0,docker0)");
        list.Bridges.Should().Equal("br0", "virbr0");
    }

    [Test]
    public void Managed_AllowsTheManagedBridge_AndTheHintNamesIt()
    {
        var list = new HostNetworkPolicy([], managedBridge: "hcbr0");

        list.Violations(Spec(Tap("eth0", "hcbr0"))).Should().BeEmpty();
        list.Violations(Spec(Tap("eth0", "br0"))).Should().ContainSingle().Which.Should()
            .Contain("(allowed: hcbr0)").And.Contain("(--network-allowed-bridges br0)").And.EndWith("or leave bridge out to use the managed bridge hcbr0");
    }

    [Test]
    public void Macvtap_IsNotJudgedHere()
    {
        var list = new HostNetworkPolicy([]);

        list.Violations(Spec(new NetworkInterfaceSpec { DeviceId = "eth0", Type = InterfaceType.Macvtap, Bridge = "br0" })).Should().BeEmpty(
            "a macvtap is made on a parent interface, checked against network-macvtap-parents by the network step");
    }

    private static NetworkInterfaceSpec Forward(params PortForward[] ports) => new() { DeviceId = "eth0", Ports = ports };

    [Test]
    public void ForwardPorts_DefaultIsTheNodePortRange_AHostServicesPortIsRefusedSayingHowToAllowIt()
    {
        var policy = new HostNetworkPolicy([]);

        policy.Violations(Spec(Forward(new PortForward(30000, 80), new PortForward(32767, 53, "udp")))).Should().BeEmpty();
        policy.Violations(Spec(Forward(new PortForward(22, 22), new PortForward(9090, 80), new PortForward(32768, 80)))).Should().Equal(
            "interfaces[0] \"eth0\": host port tcp 22 is not one this node forwards (allowed: 30000-32767); a forward takes that port on " +
            "every address of the node, so to allow it on purpose add it to the vistarad setting network-forward-ports " +
            "(--network-forward-ports 30000-32767,22), or pick a host port in the range",
            "interfaces[0] \"eth0\": host port tcp 9090 is not one this node forwards (allowed: 30000-32767); a forward takes that port on " +
            "every address of the node, so to allow it on purpose add it to the vistarad setting network-forward-ports " +
            "(--network-forward-ports 30000-32767,9090), or pick a host port in the range",
            "interfaces[0] \"eth0\": host port tcp 32768 is not one this node forwards (allowed: 30000-32767); a forward takes that port on " +
            "every address of the node, so to allow it on purpose add it to the vistarad setting network-forward-ports " +
            "(--network-forward-ports 30000-32767,32768), or pick a host port in the range");
    }

    [Test]
    public void ForwardPorts_ListedRangesAndSinglePorts_OrNone()
    {
        var policy = new HostNetworkPolicy([], forwardPorts: " 8080 , 9000-9009");

        policy.ForwardPorts.Should().Be("8080,9000-9009");
        policy.Violations(Spec(Forward(new PortForward(8080, 80), new PortForward(9009, 80)))).Should().BeEmpty();
        policy.Violations(Spec(Forward(new PortForward(8081, 80)))).Should().ContainSingle().Which.Should().Contain("(--network-forward-ports 8080,9000-9009,8081)");
        new HostNetworkPolicy([], forwardPorts: "").Violations(Spec(Forward(new PortForward(30000, 80)))).Should().ContainSingle()
            .Which.Should().Contain("(allowed: none)").And.Contain("(--network-forward-ports 30000)");
    }

    [TestCase("0", "\"0\" is not a host port")]
    [TestCase("65536", "\"65536\" is not a host port")]
    [TestCase("9000-8000", "\"9000-8000\" is not a host port")]
    [TestCase("80,x", "\"x\" is not a host port")]
    [TestCase("1-", "\"1-\" is not a host port")]
    public void ParsePorts_Malformed_SaysWhichPart(string text, string error)
    {
        HostNetworkPolicy.ParsePorts(text, out var message).Should().BeNull();
        message.Should().StartWith(error).And.EndWith("(1-65535, e.g. 30000-32767 or 8080)");
    }
}

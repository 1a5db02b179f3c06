using Hypercore.HostAccess;
using Hypercore.MicroVms;

namespace Hypercore.Core.Tests.HostAccess;

/// <summary>Which host bridges a TAP interface may name: none by default, the listed ones, and the managed bridge when it is on.</summary>
public sealed class BridgeAllowListTests
{
    private static MicroVmSpec Spec(params NetworkInterfaceSpec[] nics) => new()
    {
        Id = "web1", Vcpu = 1, MemoryInMb = 128, Kernel = new KernelSpec { Image = "/var/lib/hypercore/images/default/vmlinuz" }, Interfaces = nics,
    };

    private static NetworkInterfaceSpec Tap(string id, string? bridge) => new() { DeviceId = id, Bridge = bridge };

    [Test]
    public void Default_RefusesEveryNamedBridge_SayingHowToAllowIt_AndLetsBareTapsThrough()
    {
        var list = new BridgeAllowList([]);

        var errors = list.Violations(Spec(Tap("eth0", null), Tap("eth1", "br0"), Tap("eth2", "")));

        errors.Should().Equal(
            "interfaces[1] \"eth1\": bridge \"br0\" is not one this node puts guests on (allowed: none); a bridge joins the guest to the " +
            "host network it carries, so to allow it on purpose add it to the vistarad setting network-allowed-bridges " +
            "(--network-allowed-bridges br0), or leave bridge out for a bare tap");
    }

    [Test]
    public void Listed_AllowsExactlyThoseNames()
    {
        var list = new BridgeAllowList(["br0", " virbr0 ", ""]);

        list.Violations(Spec(Tap("eth0", "br0"), Tap("eth1", "virbr0"))).Should().BeEmpty();
        var refusal = list.Violations(Spec(Tap("eth0", "BR0"), Tap("eth1", "docker0")));
        refusal.Should().HaveCount(2);
        refusal[1].Should().Contain("(allowed: br0,virbr0)").And.Contain("(--network-allowed-bridges br0,virbr0,docker0)");
        list.Bridges.Should().Equal("br0", "virbr0");
    }

    [Test]
    public void Managed_AllowsTheManagedBridge_AndTheHintNamesIt()
    {
        var list = new BridgeAllowList([], managedBridge: "hcbr0");

        list.Violations(Spec(Tap("eth0", "hcbr0"))).Should().BeEmpty();
        list.Violations(Spec(Tap("eth0", "br0"))).Should().ContainSingle().Which.Should()
            .Contain("(allowed: hcbr0)").And.Contain("(--network-allowed-bridges br0)").And.EndWith("or leave bridge out to use the managed bridge hcbr0");
    }

    [Test]
    public void Macvtap_IsNotJudgedHere()
    {
        var list = new BridgeAllowList([]);

        list.Violations(Spec(new NetworkInterfaceSpec { DeviceId = "eth0", Type = InterfaceType.Macvtap, Bridge = "br0" })).Should().BeEmpty(
            "a macvtap is made on a parent interface, checked against network-macvtap-parents by the network step");
    }
}

using System.Net;
using Hypercore.GuestHealth;
using Hypercore.MicroVms;

namespace Hypercore.Core.Tests.GuestHealth;

/// <summary>What Create refuses of a TCP/HTTP probe's target, and the probe-allowed-cidrs setting's validation.</summary>
public sealed class ProbeTargetPolicyTests
{
    private static MicroVmSpec Spec(string? address, string? bridge = null, InterfaceType type = InterfaceType.Tap, string node = "") => new()
    {
        Id = "vm1",
        NodeName = node,
        Kernel = new KernelSpec { Image = "/k" },
        ReadinessProbe = new ProbeSpec { TcpSocket = new TcpSocketProbe(22) },
        LivenessProbe = new ProbeSpec { HttpGet = new HttpGetProbe(8080, "/healthz") },
        Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", Address = address, Bridge = bridge, Type = type }],
    };

    private static ProbeTargetPolicy Policy(string cidrs = "", bool managed = false, bool hostTargets = false) =>
        ProbeTargetPolicy.For(new GuestHealthOptions { AllowedCidrs = cidrs, AllowHostTargets = hostTargets }, "node-a",
            new Managed(managed), () => [IPAddress.Parse("192.168.50.1")]);

    [Test]
    public void Create_WithoutATcpOrHttpProbe_NothingToCheckAndNothingAllocated()
    {
        // Issue 15 (alloc7): nearly every Create; the probe list, its iterators and the result list were made anyway.
        var policy = Policy();
        var spec = Spec("203.0.113.7/24") with { ReadinessProbe = new ProbeSpec { Console = new ConsoleProbe("READY") }, LivenessProbe = null };
        policy.CreateViolations(spec).Should().BeEmpty();

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            policy.CreateViolations(spec);
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    [Test]
    public void Create_StaticAddressOutsideAllowedCidrs_RefusedForEachNetworkProbeSayingHowToAllowIt()
    {
        var errors = Policy().CreateViolations(Spec("203.0.113.7/24"));

        errors.Should().HaveCount(2);
        errors[0].Should().StartWith("readiness_probe: the guest address 203.0.113.7 was not given to the VM by this node")
            .And.Contain("add a CIDR holding 203.0.113.7 to probe-allowed-cidrs");
        errors[1].Should().StartWith("liveness_probe: the guest address 203.0.113.7");
    }

    [Test]
    public void Create_StaticAddressInsideAllowedCidrs_Accepted() =>
        Policy("203.0.113.0/24").CreateViolations(Spec("203.0.113.7/24")).Should().BeEmpty();

    [Test]
    public void Create_InterfaceOnTheManagedNetwork_AcceptedWhateverItsStaticAddress() =>
        Policy(managed: true).CreateViolations(Spec("203.0.113.7/24")).Should().BeEmpty("the node leases it an address of its own network");

    [Test]
    public void Create_ManagedNodeButTheInterfaceHasABridgeOfItsOwn_Refused() =>
        Policy(managed: true).CreateViolations(Spec("203.0.113.7/24", bridge: "br-other")).Should().HaveCount(2);

    [Test]
    public void Create_NoAddressAndNoLease_RefusedNamingTheWaysToGiveOne()
    {
        var errors = Policy().CreateViolations(Spec(null));

        errors[0].Should().Be("readiness_probe: the node leases none of this VM's interfaces an address and none has a static address; " +
            ProbeTargetPolicy.NoAddressHint);
    }

    [Test]
    public void Create_HostAddress_RefusedUnlessProbeHostTargets()
    {
        Policy().CreateViolations(Spec("192.168.50.1/24"))[0].Should().Contain("is the host itself").And.Contain("probe-host-targets");
        Policy(hostTargets: true).CreateViolations(Spec("192.168.50.1/24")).Should().BeEmpty();
        Policy(hostTargets: true).CreateViolations(Spec("198.51.100.1/24")).Should().HaveCount(2, "host targets allow the host, not every host");
    }

    [Test]
    public void Create_ConsoleProbesOnly_NothingToCheck()
    {
        var spec = Spec("203.0.113.7/24") with { ReadinessProbe = new ProbeSpec { Console = new ConsoleProbe("READY") }, LivenessProbe = null };

        Policy().CreateViolations(spec).Should().BeEmpty();
    }

    [Test]
    public void Create_VmPlacedOnAnotherNode_LeftToThatNode() =>
        Policy().CreateViolations(Spec("203.0.113.7/24", node: "node-b")).Should().BeEmpty();

    [TestCase("10.0.0.0/8, 192.0.2.0/24,2001:db8::/32", true)]
    [TestCase("", true)]
    [TestCase("10.0.0.1/8", false)]
    [TestCase("10.0.0.0", false)]
    [TestCase("any", false)]
    public void Options_AllowedCidrs_Validated(string cidrs, bool valid)
    {
        var validator = new GuestHealthOptionsValidator();

        var result = validator.Validate(null, new GuestHealthOptions { AllowedCidrs = cidrs });

        result.Succeeded.Should().Be(valid, result.FailureMessage);
        if (!valid)
        {
            result.FailureMessage.Should().Contain("Health:AllowedCidrs must be comma-separated networks like 10.20.0.0/16");
        }
    }

    private sealed class Managed(bool on) : IGuestAddressSource
    {
        public IReadOnlyCollection<IPAddress> Assigned(MicroVm vm) => [];

        public bool WillAssign(NetworkInterfaceSpec nic) => on && nic.Type == InterfaceType.Tap && string.IsNullOrEmpty(nic.Bridge);
    }
}

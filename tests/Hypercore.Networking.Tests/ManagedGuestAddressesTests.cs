using System.Net;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Networking.Tests;

/// <summary>What the guest prober may treat as node-given: the managed network's leases of that VM, nothing else.</summary>
public sealed class ManagedGuestAddressesTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hc-netw-probes2-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private NodeNetwork Network(bool managed) => new(
        Options.Create(new NodeNetworkOptions { Managed = managed, StateDirectory = _dir }), TimeProvider.System, NullLogger<NodeNetwork>.Instance);

    private static MicroVm Vm(string uid) => new()
    {
        Uid = uid,
        ResourceVersion = "1",
        Spec = new MicroVmSpec { Id = uid, Kernel = new KernelSpec { Image = "/k" } },
        Status = new MicroVmStatus { Addresses = ["192.0.2.9"] },
    };

    [Test]
    public async Task Assigned_Managed_OnlyThisVmsLeases()
    {
        using var network = Network(managed: true);
        var mine = await network.Leases.LeaseAsync("uid-a", "eth0", "02:00:00:00:00:01", "a", null, CancellationToken.None);
        await network.Leases.LeaseAsync("uid-b", "eth0", "02:00:00:00:00:02", "b", null, CancellationToken.None);
        var addresses = new ManagedGuestAddresses(network);

        addresses.Assigned(Vm("uid-a")).Should().Equal(IPAddress.Parse(mine.Address));
        addresses.Assigned(Vm("uid-c")).Should().BeEmpty("a status address is not a lease");
    }

    [Test]
    public void Assigned_NotManaged_NothingAndNoLeaseDatabaseMade()
    {
        using var network = Network(managed: false);

        new ManagedGuestAddresses(network).Assigned(Vm("uid-a")).Should().BeEmpty();
        File.Exists(Path.Combine(_dir, "leases.db")).Should().BeFalse();
    }

    [TestCase(true, InterfaceType.Tap, null, true)]
    [TestCase(true, InterfaceType.Tap, "br-own", false)]
    [TestCase(true, InterfaceType.Macvtap, null, false)]
    [TestCase(false, InterfaceType.Tap, null, false)]
    public void WillAssign_OnlyTapsOnTheManagedBridge(bool managed, InterfaceType type, string? bridge, bool expected)
    {
        using var network = Network(managed);

        new ManagedGuestAddresses(network).WillAssign(new NetworkInterfaceSpec { DeviceId = "eth0", Type = type, Bridge = bridge }).Should().Be(expected);
    }
}

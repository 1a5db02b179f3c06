using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypercore.Networking.Tests;

/// <summary>
/// The managed network with its real parts (iproute2 bridge, dnsmasq, nft, busybox udhcpc/httpd/wget), all inside
/// network namespaces each test makes and removes: a "node" namespace runs the bridge, dnsmasq and the table; "guest"
/// namespaces stand for VMs (a veth on the bridge with the VM's MAC); an "outside" namespace stands for the uplink.
/// </summary>
[NonParallelizable]
public sealed class ManagedNetworkTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    private static async Task<(StartContext Context, StartStepResult Result)> PrepareAsync(NodeUnderTest node, MicroVm vm)
    {
        var context = new StartContext(vm);
        var result = await node.Step().PrepareAsync(context, None);
        return (context, result);
    }

    private static AddressLease LeaseOf(StartContext context) =>
        ((IReadOnlyList<AddressLease>)context.Items[NetworkStartStep.LeasesItem]).Single();

    /// <summary>A guest namespace whose eth0 is a veth on the node's bridge with the given MAC.</summary>
    private static async Task<Netns> GuestOnBridgeAsync(NodeUnderTest node, string hostEnd, string mac)
    {
        var guest = await Netns.CreateAsync("g");
        await node.Node.VethAsync(hostEnd, guest, "eth0");
        await node.Node.RunAsync("ip", "link", "set", hostEnd, "master", node.Options.Bridge);
        await guest.RunAsync("ip", "link", "set", "eth0", "address", mac);
        return guest;
    }

    /// <summary>busybox udhcpc in the guest; the address it was offered (or null when none was).</summary>
    private static async Task<string?> DhcpAsync(NodeUnderTest node, Netns guest)
    {
        var script = Path.Combine(node.StateDirectory, $"udhcpc-{guest.Name}.sh");
        var output = script + ".out";
        await File.WriteAllTextAsync(script, $"#!/bin/sh\nif [ \"$1\" = bound ]; then echo \"$ip $router $dns\" > {output}; fi\n");
        File.SetUnixFileMode(script, (UnixFileMode)0b111_101_101);
        var result = await guest.TryAsync("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "8", "-T", "1", "-s", script);
        return result.Succeeded && File.Exists(output) ? (await File.ReadAllTextAsync(output)).Trim() : null;
    }

    [Test]
    public async Task Dhcp_GuestWithTheVmsMac_GetsTheIpamAddress_AndAnUnknownMacGetsNone()
    {
        await using var node = await NodeUnderTest.CreateAsync();
        await node.StartAsync();
        var vm = NodeUnderTest.Vm("web", NodeUnderTest.Nic());

        var (context, result) = await PrepareAsync(node, vm);

        result.Outcome.Should().Be(StartStepOutcome.Proceed, result.Message);
        var lease = LeaseOf(context);
        context.Vm.Spec.Interfaces[0].Bridge.Should().Be("hcbr0", "the driver puts the tap on the managed bridge");
        context.Vm.Spec.Interfaces[0].GuestMac.Should().Be(lease.Mac);
        var status = result.Status!(MicroVmStatus.Initial);
        status.Interfaces.Should().ContainSingle().Which.Should().Be(
            new InterfaceStatus("eth0", TapDevices.TapName(vm.Uid, 0), lease.Mac, lease.Address + "/24", "hcbr0"));
        status.Addresses.Should().Equal(lease.Address);

        await using var guest = await GuestOnBridgeAsync(node, "hcv0", lease.Mac);
        (await DhcpAsync(node, guest)).Should().Be($"{lease.Address} 10.200.0.1 10.200.0.1");

        await using var stranger = await GuestOnBridgeAsync(node, "hcv1", "02:aa:bb:cc:dd:ee");
        (await DhcpAsync(node, stranger)).Should().BeNull("dnsmasq serves only the MACs the IPAM leased (dhcp-range static)");
    }

    [Test]
    public async Task Dhcp_VmCreatedAfterDnsmasqStarted_IsServedAfterTheHostsFileIsReread()
    {
        await using var node = await NodeUnderTest.CreateAsync();
        await node.StartAsync();
        var pid = node.Network.DnsmasqPid;
        var (first, _) = await PrepareAsync(node, NodeUnderTest.Vm("a", NodeUnderTest.Nic()));
        var (second, _) = await PrepareAsync(node, NodeUnderTest.Vm("b", NodeUnderTest.Nic()));

        await using var guest = await GuestOnBridgeAsync(node, "hcv0", LeaseOf(second).Mac);
        (await DhcpAsync(node, guest)).Should().StartWith(LeaseOf(second).Address + " ");
        node.Network.DnsmasqPid.Should().Be(pid, "new hosts are a SIGHUP, not a restart");
        LeaseOf(first).Address.Should().NotBe(LeaseOf(second).Address);
    }

    [Test]
    public async Task NatAndPortForward_WhileTheVmExists_ReachTheGuest_AndAreGoneAfterDelete()
    {
        await using var node = await NodeUnderTest.CreateAsync(nat: true);
        await node.StartAsync();
        await using var outside = await Netns.CreateAsync("o");
        await node.Node.VethAsync("hcup0", outside, "eth0");
        await node.Node.RunAsync("ip", "addr", "add", "192.168.77.1/24", "dev", "hcup0");
        await outside.RunAsync("ip", "addr", "add", "192.168.77.2/24", "dev", "eth0"); // no route back to 10.200.0.0/24

        var vm = NodeUnderTest.Vm("web", NodeUnderTest.Nic("eth0", new PortForward(8080, 80)));
        var (context, result) = await PrepareAsync(node, vm);
        result.Outcome.Should().Be(StartStepOutcome.Proceed, result.Message);
        var lease = LeaseOf(context);
        result.Status!(MicroVmStatus.Initial).PortForwards.Should().Equal($"tcp 8080 -> {lease.Address}:80");

        await using var guest = await GuestOnBridgeAsync(node, "hcv0", lease.Mac);
        (await DhcpAsync(node, guest)).Should().NotBeNull();
        await guest.RunAsync("ip", "addr", "add", lease.Address + "/24", "dev", "eth0");
        await guest.RunAsync("ip", "route", "add", "default", "via", "10.200.0.1");
        var www = Path.Combine(node.StateDirectory, "www");
        Directory.CreateDirectory(www);
        await File.WriteAllTextAsync(Path.Combine(www, "hello.txt"), "hello from the guest\n");
        using var httpd = guest.Start("busybox", "httpd", "-f", "-p", "80", "-h", www);
        await Until(() => guest.TryAsync("busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/hello.txt").GetAwaiter().GetResult().Succeeded);

        (await node.NftTablesAsync()).Should().Contain("table inet hcnetw");
        (await WgetAsync(outside, "http://192.168.77.1:8080/hello.txt")).Should().Be("hello from the guest\n",
            await node.Node.RunAsync("nft", "list", "ruleset"));
        await using var other = await GuestOnBridgeAsync(node, "hcv1", "02:aa:bb:cc:dd:01");
        await other.RunAsync("ip", "addr", "add", "10.200.0.250/24", "dev", "eth0");
        (await WgetAsync(other, "http://10.200.0.1:8080/hello.txt")).Should().Be("hello from the guest\n",
            "another guest on the bridge reaches the forward through the node's bridge address");
        (await guest.TryAsync("busybox", "ping", "-c", "1", "-W", "3", "192.168.77.2")).Succeeded.Should().BeTrue(
            "the outside has no route to the node network, so only a masqueraded ping gets an answer");

        await node.Step().ReleaseAsync(vm, None);

        (await node.NftTablesAsync()).Should().NotContain("hcnetw");
        (await WgetAsync(outside, "http://192.168.77.1:8080/hello.txt")).Should().BeNull();
        node.Network.Leases.List().Should().BeEmpty();
        (await File.ReadAllTextAsync(node.Network.HostsPath)).Should().BeEmpty();
    }

    private static async Task<string?> WgetAsync(Netns from, string url)
    {
        // No -T: Debian's busybox 1.35 wget crashes with it; TryAsync's own timeout bounds the wait.
        var r = await from.TryAsync("busybox", "wget", "-q", "-O", "-", url);
        return r.Succeeded ? r.StandardOutput : null;
    }

    [Test]
    public async Task Restart_AdoptsDnsmasq_KeepsLeasesAndRules_AndHandsOutNoDuplicate()
    {
        await using var node = await NodeUnderTest.CreateAsync(nat: true);
        await node.StartAsync();
        var pid = node.Network.DnsmasqPid;
        var a = NodeUnderTest.Vm("a", NodeUnderTest.Nic("eth0", new PortForward(8081, 80)));
        var (before, _) = await PrepareAsync(node, a);

        node.Restart(); // the old NodeNetwork is dropped without any cleanup, as by kill -9
        using var supervisor = new NetworkSupervisor(node.Network, TimeProvider.System, NullLogger<NetworkSupervisor>.Instance);
        await supervisor.StartAsync(None);
        try
        {
            await Until(() => node.Network.DnsmasqPid is not null);
            node.Network.DnsmasqPid.Should().Be(pid, "the running dnsmasq is adopted, not replaced");
            var table = await node.Node.RunAsync("nft", "list", "table", "inet", "hcnetw");
            table.Should().Contain($"dport 8081 dnat ip to {LeaseOf(before).Address}:80");

            var (again, _) = await PrepareAsync(node, a);
            LeaseOf(again).Address.Should().Be(LeaseOf(before).Address);
            var (other, _) = await PrepareAsync(node, NodeUnderTest.Vm("b", NodeUnderTest.Nic()));
            LeaseOf(other).Address.Should().NotBe(LeaseOf(before).Address);
            node.Network.Leases.List().Should().HaveCount(2);
        }
        finally
        {
            await supervisor.StopAsync(None);
        }
    }

    [Test]
    public async Task Dnsmasq_KilledWhileSupervised_IsStartedAgain_AndServesTheSameLeases()
    {
        await using var node = await NodeUnderTest.CreateAsync();
        using var supervisor = new NetworkSupervisor(node.Network, TimeProvider.System, NullLogger<NetworkSupervisor>.Instance);
        await supervisor.StartAsync(None);
        try
        {
            await Until(() => node.Network.DnsmasqPid is not null);
            var first = node.Network.DnsmasqPid!.Value;
            var (context, _) = await PrepareAsync(node, NodeUnderTest.Vm("a", NodeUnderTest.Nic()));

            HostProcess.Signal(first, HostProcess.SigKill);
            await Until(() => node.Network.DnsmasqPid is { } p && p != first);

            await using var guest = await GuestOnBridgeAsync(node, "hcv0", LeaseOf(context).Mac);
            (await DhcpAsync(node, guest)).Should().StartWith(LeaseOf(context).Address + " ");
        }
        finally
        {
            await supervisor.StopAsync(None);
        }
    }

    [Test]
    public async Task HundredCreateDeleteCycles_LeaveNoTapLeaseHostEntryOrRule()
    {
        await using var node = await NodeUnderTest.CreateAsync(nat: true);
        await node.StartAsync();
        var addresses = new HashSet<string>();
        for (var i = 0; i < 100; i++)
        {
            var vm = NodeUnderTest.Vm($"c{i}", NodeUnderTest.Nic("eth0", new PortForward(9000, 80)), NodeUnderTest.Nic("eth1"));
            var (context, result) = await PrepareAsync(node, vm);
            result.Outcome.Should().Be(StartStepOutcome.Proceed, result.Message);
            addresses.Add(((IReadOnlyList<AddressLease>)context.Items[NetworkStartStep.LeasesItem])[0].Address);

            // What the driver does with the resolved view: a tap per interface on the bridge it names.
            for (var n = 0; n < 2; n++)
            {
                var tap = TapDevices.TapName(vm.Uid, n);
                await node.Node.RunAsync("ip", "tuntap", "add", "dev", tap, "mode", "tap");
                await node.Node.RunAsync("ip", "link", "set", "dev", tap, "master", context.Vm.Spec.Interfaces[n].Bridge!, "up");
            }

            if (i % 25 == 0)
            {
                (await node.NftTablesAsync()).Should().Contain("hcnetw");
                (await File.ReadAllLinesAsync(node.Network.HostsPath)).Should().HaveCount(2);
            }

            for (var n = 0; n < 2; n++)
            {
                await node.Node.RunAsync("ip", "link", "del", "dev", TapDevices.TapName(vm.Uid, n));
            }

            await node.Step().ReleaseAsync(vm, None);
        }

        addresses.Should().HaveCount(100, "released addresses are not handed out again right away");
        node.Network.Leases.List().Should().BeEmpty();
        node.Network.Leases.Forwards().Should().BeEmpty();
        (await File.ReadAllTextAsync(node.Network.HostsPath)).Should().BeEmpty();
        (await node.NftTablesAsync()).Should().NotContain("hcnetw");
        var links = (await node.LinksAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':')[1].Trim().Split('@')[0]).ToList();
        links.Should().BeEquivalentTo(["lo", "hcbr0"]);
        node.Network.DnsmasqPid.Should().NotBeNull("dnsmasq kept running through the churn");
    }

    [Test]
    public async Task Macvtap_OnAnAllowedParent_IsMadeWithTheVmsMac_AndRemovedOnRelease()
    {
        await using var node = await NodeUnderTest.CreateAsync(macvtapParents: "hcnp0");
        await node.Node.RunAsync("ip", "link", "add", "hcnp0", "type", "veth", "peer", "name", "hcnp1");
        await node.Node.RunAsync("ip", "link", "set", "hcnp0", "up");
        var vm = NodeUnderTest.Vm("mv", new NetworkInterfaceSpec { DeviceId = "eth0", Type = InterfaceType.Macvtap });

        var (context, result) = await PrepareAsync(node, vm);

        result.Outcome.Should().Be(StartStepOutcome.Proceed, result.Message);
        var name = NetworkStartStep.MacvtapName(vm.Uid, 0);
        var device = ((IReadOnlyDictionary<string, string>)context.Items[NetworkStartStep.MacvtapItem])["eth0"];
        var shown = await node.Node.RunAsync("ip", "-d", "link", "show", "dev", name);
        shown.Should().Contain("macvtap").And.Contain("mode bridge").And.Contain(context.Vm.Spec.Interfaces[0].GuestMac!);
        device.Should().MatchRegex(@"^/dev/tap\d+$");

        await node.Step().ReleaseAsync(vm, None);

        (await node.Node.TryAsync("ip", "link", "show", "dev", name)).Succeeded.Should().BeFalse();
    }

    [TestCase("", null, "no host interface is listed in network-macvtap-parents")]
    [TestCase("eth9", "eth0", "add it to network-macvtap-parents to allow it on purpose")]
    public async Task Macvtap_ParentNotAllowed_FailsWithMacvtapNotAllowed_AndMakesNothing(string allowed, string? parent, string hint)
    {
        var options = new NodeNetworkOptions { MacvtapParents = allowed, StateDirectory = "/nonexistent/hc-netw" };
        using var network = new NodeNetwork(Microsoft.Extensions.Options.Options.Create(options), TimeProvider.System, NullLogger<NodeNetwork>.Instance);
        var step = new NetworkStartStep(network, NullLogger<NetworkStartStep>.Instance);
        var vm = NodeUnderTest.Vm("mv", new NetworkInterfaceSpec { DeviceId = "eth0", Type = InterfaceType.Macvtap, Parent = parent });

        var result = await step.PrepareAsync(new StartContext(vm), None);

        result.Outcome.Should().Be(StartStepOutcome.Fail);
        result.Reason.Should().Be("MacvtapNotAllowed");
        result.Message.Should().Contain(hint);
        Directory.Exists(options.StateDirectory).Should().BeFalse();
    }

    [TestCase("", false, "(allowed: none)")]
    [TestCase("br0", false, "(allowed: br0)")]
    [TestCase("", true, "or leave bridge out to use the managed bridge hcbr0")]
    public async Task Tap_OnABridgeNotAllowed_FailsWithBridgeNotAllowed_BeforeAnythingIsMade(string allowed, bool managed, string hint)
    {
        // Checked again at start: a record may come from a store no Create guarded (kubectl), or the setting changed.
        var options = new NodeNetworkOptions { AllowedBridges = allowed, Managed = managed, StateDirectory = "/nonexistent/hc-netw" };
        using var network = new NodeNetwork(Microsoft.Extensions.Options.Options.Create(options), TimeProvider.System, NullLogger<NodeNetwork>.Instance);
        var step = new NetworkStartStep(network, NullLogger<NetworkStartStep>.Instance);
        var vm = NodeUnderTest.Vm("br", new NetworkInterfaceSpec { DeviceId = "eth0", Bridge = "docker0" });

        var result = await step.PrepareAsync(new StartContext(vm), None);

        result.Outcome.Should().Be(StartStepOutcome.Fail);
        result.Reason.Should().Be("BridgeNotAllowed");
        result.Message.Should().Contain("bridge \"docker0\" is not one this node puts guests on").And.Contain(hint)
            .And.Contain("network-allowed-bridges");
        Directory.Exists(options.StateDirectory).Should().BeFalse("nothing was leased or written");
    }

    [TestCase(null, 22)]
    [TestCase("8080", 8081)]
    public async Task Forward_OfAHostPortNotAllowed_FailsWithPortNotAllowed_BeforeAnyLease(string? ports, int hostPort)
    {
        var options = new NodeNetworkOptions { Managed = true, StateDirectory = "/nonexistent/hc-netw" };
        if (ports is not null) options.ForwardPorts = ports;
        using var network = new NodeNetwork(Microsoft.Extensions.Options.Options.Create(options), TimeProvider.System, NullLogger<NodeNetwork>.Instance);
        var step = new NetworkStartStep(network, NullLogger<NetworkStartStep>.Instance);
        var vm = NodeUnderTest.Vm("fw", NodeUnderTest.Nic("eth0", new PortForward(hostPort, 22)));

        var result = await step.PrepareAsync(new StartContext(vm), None);

        result.Outcome.Should().Be(StartStepOutcome.Fail);
        result.Reason.Should().Be("PortNotAllowed");
        result.Message.Should().Contain($"host port tcp {hostPort} is not one this node forwards (allowed: {ports ?? "30000-32767"})")
            .And.Contain("network-forward-ports");
        Directory.Exists(options.StateDirectory).Should().BeFalse("nothing was leased, forwarded or written");
    }

    [Test]
    public async Task Tap_OnAnAllowedBridge_ProceedsWithTheTapOnIt()
    {
        var options = new NodeNetworkOptions { AllowedBridges = "br0,virbr0", StateDirectory = "/nonexistent/hc-netw" };
        using var network = new NodeNetwork(Microsoft.Extensions.Options.Options.Create(options), TimeProvider.System, NullLogger<NodeNetwork>.Instance);
        var step = new NetworkStartStep(network, NullLogger<NetworkStartStep>.Instance);
        var vm = NodeUnderTest.Vm("br", new NetworkInterfaceSpec { DeviceId = "eth0", Bridge = "virbr0" });
        var context = new StartContext(vm);

        var result = await step.PrepareAsync(context, None);

        result.Outcome.Should().Be(StartStepOutcome.Proceed);
        context.Vm.Spec.Interfaces.Should().ContainSingle().Which.Bridge.Should().Be("virbr0");
        result.Status!(new MicroVmStatus()).Interfaces.Should().ContainSingle().Which.Bridge.Should().Be("virbr0");
    }

    [Test]
    public async Task Ports_WithoutManagedNetwork_FailWithAMessageSayingHowToTurnItOn()
    {
        var options = new NodeNetworkOptions { StateDirectory = "/nonexistent/hc-netw" };
        using var network = new NodeNetwork(Microsoft.Extensions.Options.Options.Create(options), TimeProvider.System, NullLogger<NodeNetwork>.Instance);
        var step = new NetworkStartStep(network, NullLogger<NetworkStartStep>.Instance);
        var vm = NodeUnderTest.Vm("p", NodeUnderTest.Nic("eth0", new PortForward(8080, 80)));

        var result = await step.PrepareAsync(new StartContext(vm), None);

        result.Outcome.Should().Be(StartStepOutcome.Fail);
        result.Message.Should().Contain("network-managed");
    }

    private static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            DateTime.UtcNow.Should().BeBefore(deadline, "the condition should hold within 30 s");
            await Task.Delay(100);
        }
    }
}

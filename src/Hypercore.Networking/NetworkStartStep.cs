using System.Globalization;
using System.Text.Json;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging;

namespace Hypercore.Networking;

/// <summary>
/// Start step 300 (network). For every tap interface without a bridge of its own, while managed networking is on:
/// leases a guest address (the spec's static address when it is in the node network, else the next free one), writes
/// the MAC -> address entry dnsmasq serves, records the interface's port forwards and replaces the nftables table,
/// and hands the driver a view of the interface on the managed bridge with that MAC (and, with
/// kernel.add_network_config, the leased address as its static address). A TAP interface's own bridge is checked
/// against the node's allowed bridges and its forwards against its forward ports (<see cref="HostAccess.HostNetworkPolicy"/>), MACVTAP interfaces against its allowed
/// parents, and made here. On delete everything is given back.
/// </summary>
public sealed partial class NetworkStartStep(NodeNetwork network, ILogger<NetworkStartStep> log) : IStartStep
{
    /// <summary>
    /// <see cref="StartContext.Items"/> key: the leases of this start (IReadOnlyList&lt;AddressLease&gt;); not set for a VM
    /// without interfaces on a node without the managed network (it has none).
    /// </summary>
    public const string LeasesItem = "network.leases";

    /// <summary><see cref="StartContext.Items"/> key: device id -> the macvtap's character device (/dev/tapN).</summary>
    public const string MacvtapItem = TapDevices.MacvtapItem;

    public const string ConditionType = "NetworkReady";

    public string Name => "network";

    public int Order => 300;

    public static string MacvtapName(string uid, int index) => TapDevices.MacvtapName(uid, index);

    public Task<StartStepResult> PrepareAsync(StartContext context, CancellationToken cancellationToken) =>
        // Issue 15 (cpu10): a VM without interfaces on a node without the managed network has nothing to lease, forward or
        // make, and the driver needs no other view of it: the answer is the same every time (no lists, no copy of the VM,
        // no state machine; the full path below was ~1 % of the benchmark node's CPU under Running Creates). With the
        // managed network on, the full path runs: it also clears forwards a former spec of the VM may have left.
        context.Vm.Spec.Interfaces.Count == 0 && !network.Options.Managed ? NoInterfaces : PrepareInterfacesAsync(context, cancellationToken);

    /// <summary>
    /// Proceed, with the status saying the VM has no interfaces and no port forwards (as the full path says for it), left
    /// as it is when it already says so.
    /// </summary>
    private static readonly Task<StartStepResult> NoInterfaces = Task.FromResult(StartStepResult.Proceed(static s =>
        s.Interfaces.Count == 0 && s.PortForwards.Count == 0 ? s : s with { Interfaces = [], PortForwards = [] }));

    private async Task<StartStepResult> PrepareInterfacesAsync(StartContext context, CancellationToken cancellationToken)
    {
        var vm = context.Vm;
        var options = network.Options;
        var interfaces = vm.Spec.Interfaces;
        var managed = options.Managed;
        var policy = network.Policy;
        var (gateway, net) = managed ? options.ParsedCidr() : default;
        var resolved = new List<NetworkInterfaceSpec>();
        var status = new List<InterfaceStatus>();
        var leases = new List<AddressLease>();
        var forwards = new List<ForwardEntry>();
        var macvtaps = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            for (var i = 0; i < interfaces.Count; i++)
            {
                var nic = interfaces[i];
                var mac = TapDevices.GuestMac(vm.Uid, nic, i);
                if (nic.Type == InterfaceType.Macvtap)
                {
                    if (nic.Ports.Count > 0)
                    {
                        return Fail($"interface \"{nic.DeviceId}\": ports are forwarded on the managed bridge only; use a TAP interface for them");
                    }

                    var (device, name) = await MacvtapAsync(vm, nic, i, mac, cancellationToken);
                    macvtaps[nic.DeviceId] = device;
                    resolved.Add(nic with { GuestMac = mac });
                    status.Add(new InterfaceStatus(nic.DeviceId, name, mac, nic.Address));
                    continue;
                }

                var tap = TapDevices.TapName(vm.Uid, i);
                if (policy.BridgeRefusal(nic, i) is { } notAllowed)
                {
                    LogRefused(vm.Key.ToString(), "BridgeNotAllowed", notAllowed);
                    return Fail(notAllowed, "BridgeNotAllowed");
                }

                if (!managed || !string.IsNullOrEmpty(nic.Bridge))
                {
                    if (nic.Ports.Count > 0)
                    {
                        return Fail(managed
                            ? $"interface \"{nic.DeviceId}\": ports are forwarded on the managed bridge only; remove bridge \"{nic.Bridge}\" to use it"
                            : $"interface \"{nic.DeviceId}\": ports need the node's managed network (network-managed = true in the node config)");
                    }

                    resolved.Add(nic);
                    status.Add(new InterfaceStatus(nic.DeviceId, tap, mac, nic.Address, nic.Bridge));
                    continue;
                }

                if (nic.Ports.Select(p => policy.PortRefusal(nic, p, i)).FirstOrDefault(r => r is not null) is { } portNotAllowed)
                {
                    LogRefused(vm.Key.ToString(), "PortNotAllowed", portNotAllowed);
                    return Fail(portNotAllowed, "PortNotAllowed");
                }

                var requested = nic.Address?.Split('/')[0];
                var hostname = i == 0 && MicroVmSpecValidator.IsName(vm.Spec.Id) ? vm.Spec.Id : "";
                var lease = await network.Leases.LeaseAsync(vm.Uid, nic.DeviceId, mac, hostname, requested, cancellationToken);
                leases.Add(lease);
                var cidr = $"{lease.Address}/{net.PrefixLength}";
                forwards.AddRange(nic.Ports.Select(p => new ForwardEntry(p.Protocol, p.HostPort, vm.Uid, lease.Address, p.GuestPort)));
                var view = nic with { Bridge = options.Bridge, GuestMac = mac };
                if (vm.Spec.Kernel.AddNetworkConfig)
                {
                    // The kernel's ip= (and the bootstrap's network-config) then carry the leased address; DHCP gives the same one.
                    view = view with
                    {
                        Address = cidr,
                        Gateway = nic.Gateway ?? gateway.ToString(),
                        Nameservers = nic.Nameservers.Count > 0 ? nic.Nameservers : [gateway.ToString()],
                    };
                }

                resolved.Add(view);
                status.Add(new InterfaceStatus(nic.DeviceId, tap, mac, cidr, options.Bridge));
            }

            if (managed)
            {
                await network.Leases.SetForwardsAsync(vm.Uid, forwards, cancellationToken);
                if (leases.Count > 0 || forwards.Count > 0)
                {
                    await network.EnsureBridgeAsync(cancellationToken);
                    await network.SyncAsync(cancellationToken);
                    LogLeased(vm.Key.ToString(), string.Join(", ", leases.Select(l => $"{l.DeviceId}={l.Address}")));
                }
            }
        }
        catch (NetworkException ex)
        {
            LogRefused(vm.Key.ToString(), ex.Reason, ex.Message);
            return Fail(ex.Message, ex.Reason);
        }

        context.Vm = vm with { Spec = vm.Spec with { Interfaces = resolved } };
        context.Items[LeasesItem] = leases;
        if (macvtaps.Count > 0)
        {
            context.Items[MacvtapItem] = macvtaps;
        }

        var addresses = status.Where(s => s.GuestAddress is not null).Select(s => s.GuestAddress!.Split('/')[0]).ToList();
        var forwarded = forwards.Select(f => f.ToString()).ToList();
        return StartStepResult.Proceed(s => s with
        {
            Interfaces = status,
            Addresses = addresses.Count > 0 ? addresses : s.Addresses,
            PortForwards = forwarded,
        });
    }

    public async Task ReleaseAsync(MicroVm vm, CancellationToken cancellationToken)
    {
        for (var i = 0; i < vm.Spec.Interfaces.Count; i++)
        {
            var name = MacvtapName(vm.Uid, i);
            if (await network.Commands.LinkExistsAsync(name, cancellationToken))
            {
                await network.Commands.CheckAsync("ip", ["link", "del", "dev", name], cancellationToken);
            }
        }

        if (!network.Options.Managed)
        {
            return;
        }

        var had = network.Leases.List().Any(l => l.Uid == vm.Uid) || network.Leases.Forwards().Any(f => f.Uid == vm.Uid);
        await network.Leases.ReleaseAsync(vm.Uid, cancellationToken);
        if (had)
        {
            await network.SyncAsync(cancellationToken);
            LogReleased(vm.Key.ToString());
        }
    }

    private async Task<(string Device, string Name)> MacvtapAsync(MicroVm vm, NetworkInterfaceSpec nic, int index, string mac, CancellationToken ct)
    {
        var allowed = network.Options.MacvtapParentList;
        var parent = string.IsNullOrEmpty(nic.Parent) ? (allowed.Count > 0 ? allowed[0] : null) : nic.Parent;
        if (parent is null)
        {
            throw new NetworkException("MacvtapNotAllowed",
                $"interface \"{nic.DeviceId}\": MACVTAP is not allowed on this node (no host interface is listed in network-macvtap-parents); list the host interfaces VMs may reach, or use a TAP interface");
        }

        if (!allowed.Contains(parent, StringComparer.Ordinal))
        {
            throw new NetworkException("MacvtapNotAllowed",
                $"interface \"{nic.DeviceId}\": MACVTAP on host interface \"{parent}\" is not allowed on this node (allowed: {(allowed.Count == 0 ? "none" : string.Join(", ", allowed))}); add it to network-macvtap-parents to allow it on purpose");
        }

        var name = MacvtapName(vm.Uid, index);
        var commands = network.Commands;
        if (!await commands.LinkExistsAsync(parent, ct))
        {
            throw new NetworkException("MacvtapParentNotFound", $"interface \"{nic.DeviceId}\": host interface \"{parent}\" for the macvtap does not exist on this node");
        }

        if (!await commands.LinkExistsAsync(name, ct))
        {
            await commands.CheckAsync("ip", ["link", "add", "link", parent, "name", name, "address", mac, "type", "macvtap", "mode", "bridge"], ct);
        }

        await commands.CheckAsync("ip", ["link", "set", "dev", name, "up"], ct);
        var json = await commands.CheckAsync("ip", ["-j", "link", "show", "dev", name], ct);
        using var doc = JsonDocument.Parse(json);
        var ifindex = doc.RootElement[0].GetProperty("ifindex").GetInt32();
        return ($"/dev/tap{ifindex.ToString(CultureInfo.InvariantCulture)}", name);
    }

    private static StartStepResult Fail(string message, string reason = "NetworkRefused") =>
        StartStepResult.Fail(reason, message);

    [LoggerMessage(EventId = 3660, Level = LogLevel.Information, Message = "VM {Vm}: leased {Leases} on the managed bridge")]
    private partial void LogLeased(string vm, string leases);

    [LoggerMessage(EventId = 3661, Level = LogLevel.Information, Message = "VM {Vm}: released its addresses and port forwards")]
    private partial void LogReleased(string vm);

    [LoggerMessage(EventId = 3662, Level = LogLevel.Warning, Message = "VM {Vm}: network refused ({Reason}): {Message}")]
    private partial void LogRefused(string vm, string reason, string message);
}

using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Options;

namespace Hypercore.GuestHealth;

/// <summary>
/// The addresses this node itself gives VMs (the managed network's IPAM leases), so a probe can be sent there without
/// the caller having chosen the address. Node networking implements it; without it the node gives no address.
/// </summary>
public interface IGuestAddressSource
{
    /// <summary>The addresses the node leased to this VM (by uid); empty when it leased none.</summary>
    IReadOnlyCollection<IPAddress> Assigned(MicroVm vm);

    /// <summary>At Create: whether the node will lease this interface an address itself when the VM starts.</summary>
    bool WillAssign(NetworkInterfaceSpec nic);
}

/// <summary>
/// Where a TCP or HTTP probe may go. The daemon runs as root and the probe's address would otherwise be whatever the
/// caller wrote as a static address, so a spec could make the node connect to any host it can reach. A probe goes
/// only to an address the node leased the VM itself, or to one inside <see cref="GuestHealthOptions.AllowedCidrs"/>
/// (empty by default); an address that is the host itself (loopback, unspecified, multicast, one of the host's own)
/// needs <see cref="GuestHealthOptions.AllowHostTargets"/> as before. Status addresses give nothing on their own:
/// for an unmanaged interface they are the caller's static address, and a Kubernetes user may be able to write status.
/// </summary>
public sealed class ProbeTargetPolicy
{
    public const string NoAddressHint =
        "put an interface on the node's managed network (network-managed = true, no bridge of its own) so the node leases it an " +
        "address, or give it a static address inside probe-allowed-cidrs; or use a console probe";

    private static readonly IReadOnlySet<IPAddress> NoneAssigned = new HashSet<IPAddress>();

    private readonly bool _allowHost;
    private readonly IReadOnlyList<IPNetwork> _allowed;
    private readonly IGuestAddressSource? _assigned;
    private readonly Func<IReadOnlyCollection<IPAddress>> _hostAddresses;
    private readonly string _nodeName;

    public ProbeTargetPolicy(IOptions<GuestHealthOptions> options, IOptions<ReconcilerOptions> reconciler, IGuestAddressSource? assigned = null)
        : this(options.Value, reconciler.Value.NodeName, assigned, null)
    {
    }

    private ProbeTargetPolicy(GuestHealthOptions options, string nodeName, IGuestAddressSource? assigned, Func<IReadOnlyCollection<IPAddress>>? hostAddresses)
    {
        _allowHost = options.AllowHostTargets;
        _allowed = GuestHealthOptions.ParseCidrs(options.AllowedCidrs, out _);
        _assigned = assigned;
        _hostAddresses = hostAddresses ?? HostAddresses;
        _nodeName = nodeName;
    }

    /// <summary>A policy on given settings (tests, or a host without DI); <paramref name="hostAddresses"/> defaults to the host's interfaces.</summary>
    public static ProbeTargetPolicy For(
        GuestHealthOptions options, string nodeName = "", IGuestAddressSource? assigned = null, Func<IReadOnlyCollection<IPAddress>>? hostAddresses = null) =>
        new(options, nodeName, assigned, hostAddresses);

    /// <summary>
    /// The address to probe: a leased address first, then status addresses, then the interfaces' static addresses,
    /// the first one allowed. When none is, the reason the first candidate was refused (or that there is none).
    /// </summary>
    public (IPAddress? Address, string? Problem) Resolve(MicroVm vm)
    {
        var assigned = (_assigned?.Assigned(vm) ?? []).Select(Normalize).ToHashSet();
        var candidates = assigned.Select(a => a.ToString())
            .Concat(vm.Status.Addresses)
            .Concat(vm.Spec.Interfaces.Select(i => i.Address).OfType<string>());
        string? refusal = null;
        foreach (var text in candidates)
        {
            if (!IPAddress.TryParse(text.Split('/')[0], out var parsed))
            {
                continue;
            }

            var address = Normalize(parsed);
            if (Refusal(address, assigned) is { } problem)
            {
                refusal ??= problem;
                continue;
            }

            return (address, null);
        }

        return (null, refusal ?? "the VM has no guest address to probe yet (no address leased by this node and no static interface address); " + NoAddressHint);
    }

    /// <summary>
    /// At Create, what can be known then: a TCP/HTTP probe of a VM that gets no lease from this node can only go to a
    /// static address, and one that is not allowed (or none at all) is refused before anything is written. A VM placed
    /// on another node is left to that node.
    /// </summary>
    public IReadOnlyList<string> CreateViolations(MicroVmSpec spec)
    {
        if (spec.NodeName.Length > 0 && _nodeName.Length > 0 && spec.NodeName != _nodeName)
        {
            return [];
        }

        // Issue 15 (alloc7): nearly every Create has no TCP/HTTP probe. The checks are a method of their own because its
        // closure (over `refusal`) is made when the method is entered, whether or not anything is checked.
        // The three probes are those of Probes(spec), named here without its array: a probe added there must be added here.
        return ProbesAddress(spec.ReadinessProbe) || ProbesAddress(spec.LivenessProbe) || ProbesAddress(spec.StartupProbe)
            ? AddressProbeViolations(spec)
            : [];
    }

    private IReadOnlyList<string> AddressProbeViolations(MicroVmSpec spec)
    {
        var fields = Probes(spec).Where(p => ProbesAddress(p.Probe)).Select(p => p.Field).ToList();
        if (fields.Count == 0 || spec.Interfaces.Count == 0 || spec.Interfaces.Any(n => _assigned?.WillAssign(n) == true))
        {
            return []; // no interface at all is the spec validator's message; a leased address is always allowed
        }

        string? refusal = null;
        foreach (var nic in spec.Interfaces)
        {
            if (nic.Address is { } text && IPAddress.TryParse(text.Split('/')[0], out var parsed))
            {
                if (Refusal(Normalize(parsed), NoneAssigned) is not { } problem)
                {
                    return [];
                }

                refusal ??= problem;
            }
        }

        refusal ??= "the node leases none of this VM's interfaces an address and none has a static address; " + NoAddressHint;
        return fields.Select(f => $"{f}: {refusal}").ToList();
    }

    private static bool ProbesAddress(ProbeSpec? probe) => probe is { TcpSocket: not null } or { HttpGet: not null };

    /// <summary>The spec's probes with their wire field names.</summary>
    public static IEnumerable<(ProbeSpec? Probe, string Field)> Probes(MicroVmSpec spec) =>
    [
        (spec.ReadinessProbe, "readiness_probe"),
        (spec.LivenessProbe, "liveness_probe"),
        (spec.StartupProbe, "startup_probe"),
    ];

    private string? Refusal(IPAddress address, IReadOnlySet<IPAddress> assigned)
    {
        if (IsHost(address))
        {
            return _allowHost ? null
                : $"the guest address {address} is the host itself or not a unicast address; probes never reach the node's own " +
                  "services unless the daemon is started with probe-host-targets = true (Health:AllowHostTargets)";
        }

        if (assigned.Contains(address) || _allowed.Any(n => n.Contains(address)))
        {
            return null;
        }

        return $"the guest address {address} was not given to the VM by this node (no managed-network lease) and is not in " +
            $"probe-allowed-cidrs, so the daemon will not connect to it: a spec must not be a way to probe other hosts from the node; " +
            $"add a CIDR holding {address} to probe-allowed-cidrs (Health:AllowedCidrs) to allow it on purpose, or put the interface on the managed network";
    }

    private bool IsHost(IPAddress address) =>
        IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) ||
        address.IsIPv6Multicast || (address.AddressFamily == AddressFamily.InterNetwork && address.GetAddressBytes()[0] >= 224) ||
        _hostAddresses().Contains(address);

    private static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    private static IReadOnlyCollection<IPAddress> HostAddresses()
    {
        try
        {
            return NetworkInterface.GetAllNetworkInterfaces()
                .SelectMany(n => n.GetIPProperties().UnicastAddresses.Select(a => Normalize(a.Address)))
                .ToHashSet();
        }
        catch (NetworkInformationException)
        {
            return [];
        }
    }
}

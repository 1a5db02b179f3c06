using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace Hypercore.Networking;

/// <summary>
/// The node's managed network (section "Network"). Off by default: with <see cref="Managed"/> false nothing here runs
/// and interfaces stay bare taps on the bridge the spec names, as before.
/// </summary>
public sealed class NodeNetworkOptions
{
    public const string Section = "Network";

    /// <summary>Make and run the managed bridge (IPAM, dnsmasq, NAT). Default false.</summary>
    public bool Managed { get; set; }

    /// <summary>The managed bridge's name. Default hcbr0.</summary>
    public string Bridge { get; set; } = "hcbr0";

    /// <summary>The bridge's own address with the node's prefix; guests get the other addresses of it. Default 10.200.0.1/24.</summary>
    public string Cidr { get; set; } = "10.200.0.1/24";

    /// <summary>Masquerade traffic from the node CIDR to the uplink. Default false.</summary>
    public bool Nat { get; set; }

    /// <summary>Uplink interface for NAT; empty: any interface but the bridge.</summary>
    public string Uplink { get; set; } = "";

    /// <summary>
    /// Host interfaces a MACVTAP interface may be made on, comma-separated. Empty (default): no macvtap at all, so a
    /// caller cannot reach a host network it was not given.
    /// </summary>
    public string MacvtapParents { get; set; } = "";

    /// <summary>
    /// Host bridges a TAP interface's <c>bridge</c> may name, comma-separated. Empty (default): none, so a caller cannot
    /// put a guest on a host network it was not given; the managed bridge is allowed while <see cref="Managed"/> is on.
    /// </summary>
    public string AllowedBridges { get; set; } = "";

    /// <summary>
    /// Host ports (ranges, comma-separated) a port forward may take. Default 30000-32767, Kubernetes' NodePort range, so
    /// no caller can take a host service's port (22, the daemon's 9090) on the node's addresses.
    /// </summary>
    public string ForwardPorts { get; set; } = HostAccess.HostNetworkPolicy.DefaultForwardPorts;

    /// <summary>DNS domain dnsmasq gives the guests. Default hypercore.internal.</summary>
    public string Domain { get; set; } = "hypercore.internal";

    /// <summary>The dnsmasq executable (a path or a name on PATH). Default dnsmasq.</summary>
    public string Dnsmasq { get; set; } = "dnsmasq";

    /// <summary>Where the leases database, dnsmasq's config, hosts file and pid file live (the daemon sets &lt;state-dir&gt;/network).</summary>
    public string StateDirectory { get; set; } = "/var/lib/hypercore/network";

    /// <summary>
    /// A network namespace every command (ip, nft, dnsmasq) runs in; empty: the daemon's own. For tests, which must
    /// keep their bridges and rules inside namespaces they made.
    /// </summary>
    public string NetworkNamespace { get; set; } = "";

    /// <summary>The nftables table of the daemon's own (family inet).</summary>
    public string NftTable { get; set; } = "hypercore";

    public IReadOnlyList<string> MacvtapParentList => CommaList(MacvtapParents);

    public IReadOnlyList<string> AllowedBridgeList => CommaList(AllowedBridges);

    private static string[] CommaList(string? text) =>
        (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// The host networks a TAP interface may reach: <see cref="AllowedBridges"/> (and <see cref="Bridge"/> when managed),
    /// and forwards of <see cref="ForwardPorts"/> (none while that setting does not parse: the validator then stops the
    /// daemon at start anyway).
    /// </summary>
    public HostAccess.HostNetworkPolicy HostNetworkPolicy() => new(AllowedBridgeList, Managed ? Bridge : null,
        HostAccess.HostNetworkPolicy.ParsePorts(ForwardPorts, out _) is null ? "" : ForwardPorts ?? "");

    /// <summary>The bridge address and the node network (from <see cref="Cidr"/>); call only on validated options.</summary>
    public (IPAddress Gateway, IPNetwork Network) ParsedCidr()
    {
        var slash = Cidr.IndexOf('/', StringComparison.Ordinal);
        var gateway = IPAddress.Parse(Cidr[..slash]);
        var prefix = int.Parse(Cidr[(slash + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        return (gateway, new IPNetwork(Mask(gateway, prefix), prefix));
    }

    internal static IPAddress Mask(IPAddress address, int prefix)
    {
        var value = Ipv4.ToUInt32(address);
        var mask = prefix == 0 ? 0u : uint.MaxValue << (32 - prefix);
        return Ipv4.FromUInt32(value & mask);
    }
}

/// <summary>Start-time checks of the network settings (exit 2 naming the setting).</summary>
public sealed class NodeNetworkOptionsValidator : IValidateOptions<NodeNetworkOptions>
{
    public ValidateOptionsResult Validate(string? name, NodeNetworkOptions o)
    {
        var errors = new List<string>();
        if (!IsInterfaceName(o.Bridge))
        {
            errors.Add($"Network:Bridge \"{o.Bridge}\" is not an interface name (1-15 characters of letters, digits, '-', '_', '.')");
        }

        var slash = o.Cidr.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0 || !IPAddress.TryParse(o.Cidr[..slash], out var gw) || gw.AddressFamily != AddressFamily.InterNetwork ||
            !int.TryParse(o.Cidr[(slash + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var prefix) ||
            prefix is < 16 or > 29)
        {
            errors.Add($"Network:Cidr \"{o.Cidr}\" must be the bridge's IPv4 address with a prefix of 16 to 29, e.g. 10.200.0.1/24");
        }
        else
        {
            var net = NodeNetworkOptions.Mask(gw, prefix);
            var broadcast = Ipv4.FromUInt32(Ipv4.ToUInt32(net) | ~(prefix == 0 ? 0u : uint.MaxValue << (32 - prefix)));
            if (gw.Equals(net) || gw.Equals(broadcast))
            {
                errors.Add($"Network:Cidr \"{o.Cidr}\": the bridge address must not be the network or broadcast address");
            }
        }

        if (o.Uplink.Length > 0 && !IsInterfaceName(o.Uplink))
        {
            errors.Add($"Network:Uplink \"{o.Uplink}\" is not an interface name");
        }

        foreach (var parent in o.MacvtapParentList.Where(p => !IsInterfaceName(p)))
        {
            errors.Add($"Network:MacvtapParents: \"{parent}\" is not an interface name");
        }

        foreach (var bridge in o.AllowedBridgeList.Where(b => !IsInterfaceName(b)))
        {
            errors.Add($"Network:AllowedBridges: \"{bridge}\" is not an interface name");
        }

        if (HostAccess.HostNetworkPolicy.ParsePorts(o.ForwardPorts, out var portError) is null)
        {
            errors.Add($"Network:ForwardPorts: {portError}");
        }

        if (!IsInterfaceName(o.NftTable))
        {
            errors.Add($"Network:NftTable \"{o.NftTable}\" is not a valid table name");
        }

        if (!Path.IsPathFullyQualified(o.StateDirectory))
        {
            errors.Add($"Network:StateDirectory \"{o.StateDirectory}\" must be an absolute path");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    /// <summary>IFNAMSIZ - 1 characters, and nothing a shell, nft or iproute2 would read as syntax.</summary>
    public static bool IsInterfaceName(string? value) =>
        value is { Length: > 0 and <= 15 } && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') && value is not ("." or "..");
}

internal static class Ipv4
{
    public static uint ToUInt32(IPAddress address)
    {
        var b = address.GetAddressBytes();
        return ((uint)b[0] << 24) | ((uint)b[1] << 16) | ((uint)b[2] << 8) | b[3];
    }

    public static IPAddress FromUInt32(uint value) =>
        new([(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value]);
}

namespace Hypercore.Daemon.Configuration;

/// <summary>
/// Node networking (issue 12): the managed bridge, NAT and macvtap settings, flags and TOML keys of the same name,
/// mapped straight to the "Network" section that <see cref="Networking.NodeNetworkOptions"/> binds and validates.
/// </summary>
public static class NetworkSettings
{
    public static readonly DaemonSetting Managed = new("network-managed", "Network:Managed",
        "run the managed bridge: IPAM, dnsmasq DHCP/DNS, NAT and port forwards (default off: interfaces are bare taps)", "", IsSwitch: true);
    public static readonly DaemonSetting Bridge = new("network-bridge", "Network:Bridge", "the managed bridge's name; default hcbr0", "name");
    public static readonly DaemonSetting Cidr = new("network-cidr", "Network:Cidr",
        "the bridge's address and the node network guests get addresses from; default 10.200.0.1/24", "addr/prefix");
    public static readonly DaemonSetting Nat = new("network-nat", "Network:Nat",
        "masquerade guest traffic to the uplink (nftables table inet hypercore); default off", "", IsSwitch: true);
    public static readonly DaemonSetting Uplink = new("network-uplink", "Network:Uplink",
        "uplink interface for NAT; default any interface but the bridge", "iface");
    public static readonly DaemonSetting MacvtapParents = new("network-macvtap-parents", "Network:MacvtapParents",
        "host interfaces MACVTAP interfaces may be made on (comma-separated; the first is the default); default none: macvtap refused", "ifaces");
    public static readonly DaemonSetting AllowedBridges = new(HostAccess.HostNetworkPolicy.BridgeSetting, "Network:AllowedBridges",
        "host bridges a TAP interface's bridge may name (comma-separated); default none: only bare taps, and the managed bridge with network-managed", "bridges");
    public static readonly DaemonSetting ForwardPorts = new(HostAccess.HostNetworkPolicy.PortSetting, "Network:ForwardPorts",
        "host ports port forwards may take (ranges, comma-separated); default 30000-32767", "ports");
    public static readonly DaemonSetting Domain = new("network-domain", "Network:Domain", "DNS domain dnsmasq gives guests; default hypercore.internal", "domain");

    public static readonly IReadOnlyList<DaemonSetting> All = [Managed, Bridge, Cidr, Nat, Uplink, MacvtapParents, AllowedBridges, ForwardPorts, Domain];
}

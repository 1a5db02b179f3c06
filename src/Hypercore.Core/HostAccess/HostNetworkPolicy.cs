using System.Globalization;
using Hypercore.MicroVms;

namespace Hypercore.HostAccess;

/// <summary>
/// Which host networks a spec may reach through its TAP interfaces. Checked at Create (InvalidArgument, nothing
/// written) and again by the network start step before each start (a record may come from a store no Create guarded,
/// and the settings may have changed).
/// <list type="bullet">
/// <item><b>Bridges</b> (<c>bridge</c>, flintlock's <c>overrides.bridge_name</c>): a bridge joins the guest to whatever
/// network it carries (<c>br0</c> on the uplink, <c>docker0</c>, a cluster's <c>cni0</c>), so a spec may name only a
/// bridge the operator listed (<c>network-allowed-bridges</c>, default none) and the managed bridge while
/// <c>network-managed</c> is on. Names compare exactly.</item>
/// <item><b>Port forwards</b> (<c>interfaces[].ports</c>): a forward takes a host port on every address of the node
/// (DNAT), so a forward of 22 or of the daemon's own 9090 would hand the node's sshd or API to the guest. Host ports
/// come only from <c>network-forward-ports</c>, by default 30000-32767 (the range Kubernetes keeps for NodePorts, below
/// Linux's ephemeral ports).</item>
/// </list>
/// </summary>
public sealed class HostNetworkPolicy
{
    /// <summary>The vistarad settings, as named in refusals.</summary>
    public const string BridgeSetting = "network-allowed-bridges";
    public const string PortSetting = "network-forward-ports";
    public const string DefaultForwardPorts = "30000-32767";

    private readonly HashSet<string> _bridges;
    private readonly string? _managed;
    private readonly IReadOnlyList<(int From, int To)> _ports;

    /// <param name="allowedBridges">The operator's bridges.</param>
    /// <param name="managedBridge">The managed bridge's name when <c>network-managed</c> is on, else null.</param>
    /// <param name="forwardPorts">Host port ranges forwards may take, e.g. "30000-32767,8080" (validated: <see cref="ParsePorts"/>).</param>
    public HostNetworkPolicy(IEnumerable<string> allowedBridges, string? managedBridge = null, string forwardPorts = DefaultForwardPorts)
    {
        _bridges = new HashSet<string>(allowedBridges.Select(b => b.Trim()).Where(b => b.Length > 0), StringComparer.Ordinal);
        _managed = string.IsNullOrEmpty(managedBridge) ? null : managedBridge;
        if (_managed is not null)
        {
            _bridges.Add(_managed);
        }

        _ports = ParsePorts(forwardPorts, out var error) ?? throw new ArgumentException(error, nameof(forwardPorts));
        ForwardPorts = string.Join(",", _ports.Select(r => r.From == r.To ? Text(r.From) : $"{Text(r.From)}-{Text(r.To)}"));
    }

    /// <summary>Allowed bridges (the managed one included), sorted, for messages.</summary>
    public IReadOnlyList<string> Bridges => _bridges.Order(StringComparer.Ordinal).ToList();

    /// <summary>The host ports forwards may take, as the setting writes them ("" for none).</summary>
    public string ForwardPorts { get; }

    public bool IsAllowed(string bridge) => _bridges.Contains(bridge);

    public bool IsForwardPort(int port) => _ports.Any(r => port >= r.From && port <= r.To);

    /// <summary>
    /// "30000-32767,8080" as ranges (empty text: none); null with <paramref name="error"/> when a part is not a port or
    /// a range of ports (1-65535, low-high).
    /// </summary>
    public static IReadOnlyList<(int From, int To)>? ParsePorts(string? text, out string? error)
    {
        var ranges = new List<(int, int)>();
        foreach (var part in (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var dash = part.IndexOf('-', StringComparison.Ordinal);
            if (!Port(dash < 0 ? part : part[..dash], out var from) || !Port(dash < 0 ? part : part[(dash + 1)..], out var to) || to < from)
            {
                error = $"\"{part}\" is not a host port or a range of them (1-65535, e.g. 30000-32767 or 8080)";
                return null;
            }

            ranges.Add((from, to));
        }

        error = null;
        return ranges;

        static bool Port(string s, out int port) =>
            int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is >= 1 and <= 65535;
    }

    /// <summary>Why interface <paramref name="index"/> may not be put on its bridge, or null when it may (or names none, or is no TAP).</summary>
    public string? BridgeRefusal(NetworkInterfaceSpec nic, int index)
    {
        if (nic.Type != InterfaceType.Tap || string.IsNullOrEmpty(nic.Bridge) || IsAllowed(nic.Bridge))
        {
            return null;
        }

        var now = _bridges.Count == 0 ? "none" : string.Join(",", Bridges);
        var list = string.Join(",", _bridges.Where(b => b != _managed).Order(StringComparer.Ordinal).Append(nic.Bridge));
        return $"interfaces[{index}] \"{nic.DeviceId}\": bridge \"{nic.Bridge}\" is not one this node puts guests on (allowed: {now}); " +
            $"a bridge joins the guest to the host network it carries, so to allow it on purpose add it to the vistarad setting {BridgeSetting} " +
            $"(--{BridgeSetting} {list}), or leave bridge out" + (_managed is not null ? $" to use the managed bridge {_managed}" : " for a bare tap");
    }

    /// <summary>Why a forward of host port <paramref name="port"/> on interface <paramref name="index"/> is refused, or null.</summary>
    public string? PortRefusal(NetworkInterfaceSpec nic, PortForward port, int index)
    {
        if (IsForwardPort(port.HostPort))
        {
            return null;
        }

        var now = ForwardPorts.Length == 0 ? "none" : ForwardPorts;
        var list = ForwardPorts.Length == 0 ? Text(port.HostPort) : $"{ForwardPorts},{Text(port.HostPort)}";
        return $"interfaces[{index}] \"{nic.DeviceId}\": host port {port.Protocol} {Text(port.HostPort)} is not one this node forwards (allowed: {now}); " +
            $"a forward takes that port on every address of the node, so to allow it on purpose add it to the vistarad setting {PortSetting} " +
            $"(--{PortSetting} {list}), or pick a host port in the range";
    }

    /// <summary>Every TAP interface of the spec on a bridge not allowed, and every forward of a host port not allowed.</summary>
    public IReadOnlyList<string> Violations(MicroVmSpec spec)
    {
        List<string>? errors = null;
        for (var i = 0; i < spec.Interfaces.Count; i++)
        {
            var nic = spec.Interfaces[i];
            if (BridgeRefusal(nic, i) is { } bridge)
            {
                (errors ??= []).Add(bridge);
            }

            foreach (var port in nic.Ports)
            {
                if (PortRefusal(nic, port, i) is { } refusal)
                {
                    (errors ??= []).Add(refusal);
                }
            }
        }

        return errors ?? (IReadOnlyList<string>)[];
    }

    private static string Text(int port) => port.ToString(CultureInfo.InvariantCulture);
}

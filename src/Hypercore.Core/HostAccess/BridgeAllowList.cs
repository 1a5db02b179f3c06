using Hypercore.MicroVms;

namespace Hypercore.HostAccess;

/// <summary>
/// Which host bridges a TAP interface's <c>bridge</c> (flintlock's <c>overrides.bridge_name</c>) may put a guest on. A
/// bridge joins the guest to whatever network that bridge carries (<c>br0</c> on the uplink, <c>docker0</c>, a
/// cluster's <c>cni0</c>), so naming one is reaching a host network; the node puts guests only on bridges its operator
/// listed (<c>network-allowed-bridges</c>) and on its own managed bridge when <c>network-managed</c> is on. The default
/// list is empty. Checked at Create (InvalidArgument, nothing written) and again by the network start step before each
/// start (a record may come from a store no Create guarded, and the settings may have changed). Names compare exactly.
/// </summary>
public sealed class BridgeAllowList
{
    /// <summary>The vistarad setting, as named in refusals.</summary>
    public const string Setting = "network-allowed-bridges";

    private readonly HashSet<string> _allowed;
    private readonly string? _managed;

    /// <param name="allowed">The operator's list.</param>
    /// <param name="managedBridge">The managed bridge's name when <c>network-managed</c> is on, else null.</param>
    public BridgeAllowList(IEnumerable<string> allowed, string? managedBridge = null)
    {
        _allowed = new HashSet<string>(allowed.Select(b => b.Trim()).Where(b => b.Length > 0), StringComparer.Ordinal);
        _managed = string.IsNullOrEmpty(managedBridge) ? null : managedBridge;
        if (_managed is not null)
        {
            _allowed.Add(_managed);
        }
    }

    /// <summary>Allowed bridges (the managed one included), sorted, for messages.</summary>
    public IReadOnlyList<string> Bridges => _allowed.Order(StringComparer.Ordinal).ToList();

    public bool IsAllowed(string bridge) => _allowed.Contains(bridge);

    /// <summary>Why interface <paramref name="index"/> may not be put on its bridge, or null when it may (or names none, or is no TAP).</summary>
    public string? Refusal(NetworkInterfaceSpec nic, int index)
    {
        if (nic.Type != InterfaceType.Tap || string.IsNullOrEmpty(nic.Bridge) || IsAllowed(nic.Bridge))
        {
            return null;
        }

        var now = _allowed.Count == 0 ? "none" : string.Join(",", Bridges);
        var list = string.Join(",", _allowed.Where(b => b != _managed).Order(StringComparer.Ordinal).Append(nic.Bridge));
        return $"interfaces[{index}] \"{nic.DeviceId}\": bridge \"{nic.Bridge}\" is not one this node puts guests on (allowed: {now}); " +
            $"a bridge joins the guest to the host network it carries, so to allow it on purpose add it to the vistarad setting {Setting} " +
            $"(--{Setting} {list}), or leave bridge out" + (_managed is not null ? $" to use the managed bridge {_managed}" : " for a bare tap");
    }

    /// <summary>Every TAP interface of the spec whose bridge is not allowed.</summary>
    public IReadOnlyList<string> Violations(MicroVmSpec spec)
    {
        List<string>? errors = null;
        for (var i = 0; i < spec.Interfaces.Count; i++)
        {
            if (Refusal(spec.Interfaces[i], i) is { } refusal)
            {
                (errors ??= []).Add(refusal);
            }
        }

        return errors ?? (IReadOnlyList<string>)[];
    }
}

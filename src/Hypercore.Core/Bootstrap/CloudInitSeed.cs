using Hypercore.MicroVms;
using YamlDotNet.RepresentationModel;

namespace Hypercore.Bootstrap;

/// <summary>An interface as the guest sees it: its spec and the MAC the driver gives the NIC.</summary>
public sealed record GuestNic(NetworkInterfaceSpec Spec, string Mac);

/// <summary>
/// The cloud-init NoCloud files for one VM, the same for every provider (a seed disk on QEMU and Cloud Hypervisor,
/// MMDS under latest/ on Firecracker): meta-data always names the instance (instance-id = uid, local-hostname = id)
/// unless the caller did; user-data is always present (NoCloud needs the file, even empty); with
/// kernel.add_network_config a network-config v2 is generated from the interfaces unless the caller gave one.
/// </summary>
public static class CloudInitSeed
{
    public const string InstanceIdKey = "instance-id";
    public const string HostnameKey = "local-hostname";

    /// <summary>Whether the VM gets cloud-init data at all: metadata given, or a network config to generate.</summary>
    public static bool IsNeeded(MicroVmSpec spec) =>
        spec.Metadata.Count > 0 || (spec.Kernel.AddNetworkConfig && spec.Interfaces.Count > 0);

    /// <summary>File name to content, meta-data first; the spec's metadata must have passed <see cref="GuestMetadataRules"/>.</summary>
    public static IReadOnlyDictionary<string, string> Files(MicroVm vm, IReadOnlyList<GuestNic> nics)
    {
        var spec = vm.Spec;
        var files = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [GuestMetadataRules.MetaData] = MetaData(spec.Metadata.GetValueOrDefault(GuestMetadataRules.MetaData), vm.Uid, spec.Id),
            [GuestMetadataRules.UserData] = spec.Metadata.GetValueOrDefault(GuestMetadataRules.UserData) ?? "",
        };
        if (spec.Metadata.TryGetValue(GuestMetadataRules.VendorData, out var vendor))
        {
            files[GuestMetadataRules.VendorData] = vendor;
        }

        if (spec.Metadata.TryGetValue(GuestMetadataRules.NetworkConfig, out var network))
        {
            files[GuestMetadataRules.NetworkConfig] = network; // the caller's wins over a generated one
        }
        else if (spec.Kernel.AddNetworkConfig && nics.Count > 0)
        {
            files[GuestMetadataRules.NetworkConfig] = NetworkConfigV2(nics);
        }

        foreach (var (key, value) in spec.Metadata.Where(kv => !files.ContainsKey(kv.Key)).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            files[key] = value;
        }

        return files;
    }

    /// <summary>
    /// The caller's meta-data with instance-id and local-hostname added where missing. A block mapping keeps the
    /// caller's text (comments included) and gets lines appended; a flow mapping (JSON) is re-emitted in block style.
    /// </summary>
    public static string MetaData(string? caller, string uid, string hostname)
    {
        if (string.IsNullOrWhiteSpace(caller))
        {
            return Emit(new Dictionary<string, object> { [InstanceIdKey] = uid, [HostnameKey] = hostname });
        }

        var stream = GuestMetadataRules.Load(caller);
        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new ArgumentException("meta-data is not one YAML mapping (the spec validator refuses it)", nameof(caller));
        }

        var missing = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var (key, value) in new[] { (InstanceIdKey, uid), (HostnameKey, hostname) })
        {
            if (!root.Children.ContainsKey(new YamlScalarNode(key)))
            {
                missing[key] = value;
            }
        }

        if (missing.Count == 0)
        {
            return caller;
        }

        if (root.Style != YamlDotNet.Core.Events.MappingStyle.Flow)
        {
            return (caller.EndsWith('\n') ? caller : caller + "\n") + Emit(missing);
        }

        foreach (var (key, value) in missing)
        {
            root.Add(key, new YamlScalarNode((string)value));
        }

        root.Style = YamlDotNet.Core.Events.MappingStyle.Block;
        using var writer = new StringWriter();
        stream.Save(writer, assignAnchors: false);
        var text = writer.ToString();
        return text.EndsWith("...\n", StringComparison.Ordinal) ? text[..^4] : text;
    }

    /// <summary>
    /// cloud-init network-config version 2 (netplan's schema): one entry per interface named by its device_id and
    /// matched by MAC; a static address (CIDR) with gateway and nameservers, or DHCPv4 where none is given.
    /// </summary>
    public static string NetworkConfigV2(IReadOnlyList<GuestNic> nics)
    {
        var ethernets = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var nic in nics)
        {
            var entry = new Dictionary<string, object>(StringComparer.Ordinal)
            {
                ["match"] = new Dictionary<string, object> { ["macaddress"] = nic.Mac.ToLowerInvariant() },
            };
            if (string.IsNullOrEmpty(nic.Spec.Address))
            {
                entry["dhcp4"] = true;
            }
            else
            {
                entry["dhcp4"] = false;
                entry["addresses"] = new List<object> { nic.Spec.Address };
                if (!string.IsNullOrEmpty(nic.Spec.Gateway))
                {
                    entry[nic.Spec.Gateway.Contains(':', StringComparison.Ordinal) ? "gateway6" : "gateway4"] = nic.Spec.Gateway;
                }

                if (nic.Spec.Nameservers.Count > 0)
                {
                    entry["nameservers"] = new Dictionary<string, object> { ["addresses"] = nic.Spec.Nameservers.ToList<object>() };
                }
            }

            ethernets[nic.Spec.DeviceId] = entry;
        }

        return Emit(new Dictionary<string, object> { ["version"] = 2, ["ethernets"] = ethernets });
    }

    private static string Emit(object value) => YamlText.Emit(value);
}

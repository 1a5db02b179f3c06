using System.Net;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Vmm;

/// <summary>Builds the guest kernel command line from the spec.</summary>
public static class KernelArgs
{
    /// <summary>
    /// The spec's cmdline, or <paramref name="defaults"/> when it has none; with kernel.add_network_config, one
    /// kernel "ip=" argument (ip=client::gateway:netmask::ethN:off[:dns0[:dns1]]) per interface with a static address.
    /// </summary>
    public static string Build(MicroVmSpec spec, string defaults) =>
        WithNetworkConfig(spec.Kernel.Cmdline.Count > 0 ? spec.Kernel.RenderCmdline() : defaults, spec);

    /// <summary><paramref name="args"/> plus, with kernel.add_network_config, one "ip=" argument per static address.</summary>
    public static string WithNetworkConfig(string args, MicroVmSpec spec)
    {
        if (!spec.Kernel.AddNetworkConfig || spec.Kernel.Cmdline.ContainsKey("ip"))
        {
            return args;
        }

        var extra = new List<string>();
        for (var i = 0; i < spec.Interfaces.Count; i++)
        {
            var nic = spec.Interfaces[i];
            if (string.IsNullOrEmpty(nic.Address) || !IPNetwork.TryParse(nic.Address, out var net) ||
                !IPAddress.TryParse(nic.Address.Split('/')[0], out var ip))
            {
                continue;
            }

            var mask = PrefixToMask(net.PrefixLength);
            var dns = string.Concat(nic.Nameservers.Take(2).Select(ns => ":" + ns));
            extra.Add($"ip={ip}::{nic.Gateway}:{mask}::eth{i}:off{dns}");
        }

        return extra.Count == 0 ? args : $"{args} {string.Join(' ', extra)}".Trim();
    }

    /// <summary>
    /// <paramref name="args"/> with the root volume's partition_id as root=PARTUUID=&lt;id&gt; (replacing a default
    /// root= argument); unchanged without a partition_id or when the spec's own cmdline sets root.
    /// </summary>
    public static string WithRootPartition(string args, MicroVmSpec spec)
    {
        if (spec.RootVolume?.PartitionId is not { } partition || spec.Kernel.Cmdline.ContainsKey("root"))
        {
            return args;
        }

        var parts = args.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(a => !a.StartsWith("root=", StringComparison.Ordinal));
        return string.Join(' ', parts.Append($"root=PARTUUID={partition}"));
    }

    private static string PrefixToMask(int prefix)
    {
        var bits = prefix == 0 ? 0u : uint.MaxValue << (32 - prefix);
        return new IPAddress([(byte)(bits >> 24), (byte)(bits >> 16), (byte)(bits >> 8), (byte)bits]).ToString();
    }
}

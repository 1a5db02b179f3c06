using System.Security.Cryptography;
using System.Text;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Vmm;

/// <summary>
/// Tap devices for a VM's interfaces, made with iproute2 before the VMM opens them and removed on stop/cleanup.
/// Names are derived from the uid so a later daemon can find and remove them: "hc" + 8 hex + "n" + index, at most
/// 15 characters (IFNAMSIZ - 1).
/// </summary>
public static class TapDevices
{
    public static string TapName(string uid, int index)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(uid)))[..8];
        return $"hc{hash}n{index}";
    }

    // Node networking (issue 12): macvtaps are made by the network start step, which hands the driver their /dev/tapN.

    /// <summary><see cref="Hypercore.Reconciliation.StartContext.Items"/> key: device id -> the macvtap's character device (/dev/tapN).</summary>
    public const string MacvtapItem = "network.macvtap";

    /// <summary>The macvtap of interface <paramref name="index"/>: "hc" + 8 hex + "m" + index (same hash as the tap).</summary>
    public static string MacvtapName(string uid, int index) => TapName(uid, index)[..10] + "m" + index.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A stable locally administered unicast MAC for an interface that did not ask for one.</summary>
    public static string GuestMac(string uid, NetworkInterfaceSpec nic, int index)
    {
        if (!string.IsNullOrEmpty(nic.GuestMac))
        {
            return nic.GuestMac.ToLowerInvariant();
        }

        var h = SHA256.HashData(Encoding.UTF8.GetBytes($"{uid}/{nic.DeviceId}/{index}"));
        return $"02:{h[0]:x2}:{h[1]:x2}:{h[2]:x2}:{h[3]:x2}:{h[4]:x2}";
    }

    public static bool Exists(string name) => Directory.Exists($"/sys/class/net/{name}");

    /// <summary>
    /// Creates (or re-uses) the tap, optionally owned by a uid/gid (jailer), turns the host's IPv6 off on it
    /// (<see cref="DisableHostIpv6"/>), attaches it to a bridge and brings it up.
    /// </summary>
    public static async Task CreateAsync(string name, string? bridge, int? ownerUid, int? ownerGid, CancellationToken ct)
    {
        if (!Exists(name))
        {
            var args = new List<string> { "tuntap", "add", "dev", name, "mode", "tap" };
            if (ownerUid is { } u)
            {
                args.AddRange(["user", u.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            }

            if (ownerGid is { } g)
            {
                args.AddRange(["group", g.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            }

            await IpAsync(args, ct);
        }

        DisableHostIpv6(name);
        if (!string.IsNullOrEmpty(bridge))
        {
            if (!Exists(bridge))
            {
                throw new DriverException("BridgeNotFound", $"bridge \"{bridge}\" for tap {name} does not exist on this node");
            }

            await IpAsync(["link", "set", "dev", name, "master", bridge], ct);
        }

        await IpAsync(["link", "set", "dev", name, "up"], ct);
    }

    /// <summary>
    /// Turns IPv6 off on the host's side of the tap before it comes up. Otherwise the kernel gives an up tap an IPv6
    /// link-local address, and a guest on a bare tap (no bridge) could reach, over fe80::, every host service listening
    /// on all addresses (sshd, a kubelet): a host network it was not given. A tap on a bridge is a bridge port, whose
    /// frames the bridge takes before the host's IPv6 sees them, so this changes nothing for it. Skipped when the host
    /// has no IPv6 at all.
    /// </summary>
    public static void DisableHostIpv6(string name)
    {
        var path = $"/proc/sys/net/ipv6/conf/{name}/disable_ipv6";
        if (!File.Exists(path))
        {
            return;
        }

        try
        {
            File.WriteAllText(path, "1");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new DriverException("NetworkError", $"could not turn IPv6 off on tap {name} ({path}: {ex.Message})");
        }
    }

    /// <summary>Removes the tap if it exists. Safe to call twice.</summary>
    public static async Task DeleteAsync(string name, CancellationToken ct)
    {
        if (Exists(name))
        {
            var result = await HostProcess.RunAsync("ip", ["link", "del", "dev", name], TimeSpan.FromSeconds(10), ct);
            if (!result.Succeeded && Exists(name))
            {
                throw new DriverException("NetworkError", $"could not delete tap {name}: {result.Diagnostic}");
            }
        }
    }

    private static async Task IpAsync(IReadOnlyList<string> args, CancellationToken ct)
    {
        var result = await HostProcess.RunAsync("ip", args, TimeSpan.FromSeconds(10), ct);
        if (!result.Succeeded)
        {
            throw new DriverException("NetworkError", $"ip {string.Join(' ', args)} failed: {result.Diagnostic}");
        }
    }
}

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

    /// <summary>Creates (or re-uses) the tap, optionally owned by a uid/gid (jailer), brings it up and attaches it to a bridge.</summary>
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

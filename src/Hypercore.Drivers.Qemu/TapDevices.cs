using System.Security.Cryptography;
using System.Text;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Qemu;

/// <summary>Host tap devices for VM interfaces, made and removed with iproute2 (<c>ip</c>).</summary>
internal sealed class TapDevices(TimeProvider time)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(15);

    /// <summary>
    /// "hc" + 10 hex digits of SHA-256(uid) + "n" + index: 14 characters (IFNAMSIZ allows 15), stable across
    /// restarts, and the same uid always maps to the same names, so cleanup finds them again.
    /// </summary>
    public static string Name(string uid, int index) => $"hc{Hash(uid)[..10]}n{index}";

    /// <summary>The interface's MAC, or a stable locally administered one derived from uid and index.</summary>
    public static string Mac(string uid, int index, NetworkInterfaceSpec nic)
    {
        if (!string.IsNullOrEmpty(nic.GuestMac))
        {
            return nic.GuestMac.ToLowerInvariant();
        }

        var h = Hash(uid);
        return $"52:54:{h[..2]}:{h[2..4]}:{h[4..6]}:{index:x2}";
    }

    public static bool Exists(string name) => Directory.Exists($"/sys/class/net/{name}");

    /// <summary>Creates the tap (if missing), attaches it to the bridge (if any) and sets it up.</summary>
    public async Task EnsureAsync(string name, string? bridge, CancellationToken ct)
    {
        if (!Exists(name))
        {
            await IpAsync(ct, "tuntap", "add", "dev", name, "mode", "tap");
        }

        if (!string.IsNullOrEmpty(bridge))
        {
            if (!Exists(bridge))
            {
                throw new DriverException("BridgeNotFound", $"bridge \"{bridge}\" for tap {name} does not exist on this node");
            }

            await IpAsync(ct, "link", "set", "dev", name, "master", bridge);
        }

        await IpAsync(ct, "link", "set", "dev", name, "up");
    }

    public async Task RemoveAsync(string name, CancellationToken ct)
    {
        if (Exists(name))
        {
            await IpAsync(ct, "link", "delete", "dev", name);
        }
    }

    private async Task IpAsync(CancellationToken ct, params string[] args)
    {
        CommandResult result;
        try
        {
            result = await HostProcesses.RunAsync("ip", args, CommandTimeout, time, ct);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new DriverException("NetworkError", $"cannot run ip (install iproute2): {ex.Message}", ex);
        }
        catch (TimeoutException ex)
        {
            throw new DriverException("NetworkError", ex.Message, ex);
        }

        if (result.ExitCode != 0)
        {
            throw new DriverException("NetworkError", $"ip {string.Join(' ', args)} failed: {result.Output}");
        }
    }

    private static string Hash(string uid) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(uid)));
}

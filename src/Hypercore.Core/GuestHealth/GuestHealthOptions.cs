using System.Net;
using Microsoft.Extensions.Options;

namespace Hypercore.GuestHealth;

/// <summary>Guest prober settings (section "Health").</summary>
public sealed class GuestHealthOptions
{
    public const string Section = "Health";

    /// <summary>
    /// How often the prober looks at every running VM: console lines are read and due probes started on this beat,
    /// so it bounds how late a probe can run (a probe's own period is whole seconds). Default 250 ms.
    /// </summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Lets TCP/HTTP probes reach an address that is the host itself (loopback, the host's own addresses). Off by
    /// default: the daemon runs as root and a spec must not be a way to scan the node's own services.
    /// </summary>
    public bool AllowHostTargets { get; set; }

    /// <summary>
    /// Comma-separated CIDRs TCP/HTTP probes may reach besides the addresses the node leased the VM itself (e.g. the
    /// network of statically addressed guests on a bridge of their own). Empty by default: a caller's static address
    /// must not make the root daemon connect to any host it can reach.
    /// </summary>
    public string AllowedCidrs { get; set; } = "";

    /// <summary>The networks in <paramref name="text"/>; <paramref name="errors"/> names each entry that is not one.</summary>
    public static IReadOnlyList<IPNetwork> ParseCidrs(string? text, out IReadOnlyList<string> errors)
    {
        var networks = new List<IPNetwork>();
        var bad = new List<string>();
        foreach (var entry in (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // A host part (10.0.0.1/8) is refused rather than masked: it is most likely a typo for a single address.
            var slash = entry.IndexOf('/', StringComparison.Ordinal);
            if (slash > 0 && IPNetwork.TryParse(entry, out var network) && IPAddress.TryParse(entry[..slash], out var address) &&
                network.BaseAddress.Equals(address))
            {
                networks.Add(network);
            }
            else
            {
                bad.Add(entry);
            }
        }

        errors = bad;
        return networks;
    }
}

internal sealed class GuestHealthOptionsValidator : IValidateOptions<GuestHealthOptions>
{
    public ValidateOptionsResult Validate(string? name, GuestHealthOptions o)
    {
        var failures = new List<string>();
        if (o.TickInterval <= TimeSpan.Zero || o.TickInterval > TimeSpan.FromSeconds(10))
        {
            failures.Add($"Health:TickInterval must be more than 0 and at most 10 s, got {o.TickInterval}");
        }

        GuestHealthOptions.ParseCidrs(o.AllowedCidrs, out var bad);
        if (bad.Count > 0)
        {
            failures.Add($"Health:AllowedCidrs must be comma-separated networks like 10.20.0.0/16 with no host bits set; " +
                $"not one: {string.Join(", ", bad.Select(b => $"\"{b}\""))}");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

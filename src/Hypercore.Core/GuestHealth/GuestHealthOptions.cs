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
}

internal sealed class GuestHealthOptionsValidator : IValidateOptions<GuestHealthOptions>
{
    public ValidateOptionsResult Validate(string? name, GuestHealthOptions o) =>
        o.TickInterval > TimeSpan.Zero && o.TickInterval <= TimeSpan.FromSeconds(10)
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"Health:TickInterval must be more than 0 and at most 10 s, got {o.TickInterval}");
}

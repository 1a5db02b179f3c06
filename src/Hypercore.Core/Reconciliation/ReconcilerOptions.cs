using Microsoft.Extensions.Options;

namespace Hypercore.Reconciliation;

/// <summary>Reconciler settings (section "Reconciler").</summary>
public sealed class ReconcilerOptions
{
    public const string Section = "Reconciler";

    /// <summary>This node's name; records for other nodes are left alone. Default: the host name.</summary>
    public string NodeName { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>
    /// Parallel workers; one key is never worked by two at once. Default 16 per CPU, at least 128: a worker spends
    /// nearly all its time awaiting a hypervisor (process start, QMP, an API socket), not on a CPU, and an awaiting
    /// worker holds no thread, so a small count only serializes VM starts behind one another. Issue 15, density: with
    /// 64, 100 VMs created at once started in two waves (the last 36 only as the first finished) and 100 Deletes of
    /// guests still booting took two stop grace periods; at 128 the 100 start at once (bench/NOTES.md).
    /// </summary>
    public int Workers { get; set; } = DefaultWorkers;

    public static int DefaultWorkers => Math.Max(128, 16 * Environment.ProcessorCount);

    /// <summary>
    /// Longest a single inspection of a VM's live state may take; a hypervisor that does not answer in time is
    /// reported Unknown (never dead) and the worker moves on. Default 5 s.
    /// </summary>
    public TimeSpan InspectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a running VM's state may stay Unknown before it is declared Unresponsive and its restart policy
    /// applies (Always/OnFailure: killed and started again; Never: killed and left Failed). Default 60 s.
    /// </summary>
    public TimeSpan UnresponsiveAfter { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest a driver may take to report availability or list its VMs at start. Default 30 s.</summary>
    public TimeSpan AdoptionTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>First retry delay after a failure; doubles each failure. Default 500 ms.</summary>
    public TimeSpan BackoffBase { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Retry delay cap. Default 2 minutes.</summary>
    public TimeSpan BackoffCap { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// How often a live VM's real state is polled (VMs die without telling anyone). Default 2 s. Each delay is
    /// shortened by a random part of up to a quarter, and the interval stretches when the node has more VMs than
    /// <see cref="MaxPollsPerSecond"/> allows (<see cref="PollSpreading"/>).
    /// </summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Issue 15: the average number of polls per second across all VMs that the poll interval may lead to; above
    /// it the interval grows with the VM count (worst-case time to notice a dead VM: about VMs ÷ (0.875 × this), 114 s for
    /// 100,000 VMs). Default 1,000: at 100 VMs the interval stays at <see cref="PollInterval"/>.
    /// </summary>
    public int MaxPollsPerSecond { get; set; } = 1000;

    /// <summary>How often every record is queued again, whatever the watch said. Default 5 minutes.</summary>
    public TimeSpan ResyncInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Time a guest gets to power off before it is killed. Default 10 s.</summary>
    public TimeSpan StopGracePeriod { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>A VM that ran at least this long before dying resets its crash-loop backoff. Default 30 s.</summary>
    public TimeSpan StableRunTime { get; set; } = TimeSpan.FromSeconds(30);
}

internal sealed class ReconcilerOptionsValidator : IValidateOptions<ReconcilerOptions>
{
    public const int MaxWorkers = 1024;

    public ValidateOptionsResult Validate(string? name, ReconcilerOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.NodeName))
        {
            errors.Add("Reconciler:NodeName must not be empty");
        }

        if (o.Workers is < 1 or > MaxWorkers)
        {
            errors.Add($"Reconciler:Workers must be between 1 and {MaxWorkers}, got {o.Workers}");
        }

        if (o.InspectTimeout <= TimeSpan.Zero || o.UnresponsiveAfter <= TimeSpan.Zero || o.AdoptionTimeout <= TimeSpan.Zero)
        {
            errors.Add("Reconciler:InspectTimeout, Reconciler:UnresponsiveAfter and Reconciler:AdoptionTimeout must be positive");
        }

        if (o.BackoffBase <= TimeSpan.Zero || o.BackoffCap < o.BackoffBase)
        {
            errors.Add("Reconciler:BackoffBase must be positive and not above Reconciler:BackoffCap");
        }

        if (o.PollInterval <= TimeSpan.Zero || o.ResyncInterval <= TimeSpan.Zero)
        {
            errors.Add("Reconciler:PollInterval and Reconciler:ResyncInterval must be positive");
        }

        if (o.MaxPollsPerSecond < 1)
        {
            errors.Add($"Reconciler:MaxPollsPerSecond must be at least 1, got {o.MaxPollsPerSecond}");
        }

        if (o.StopGracePeriod < TimeSpan.Zero)
        {
            errors.Add("Reconciler:StopGracePeriod must not be negative");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

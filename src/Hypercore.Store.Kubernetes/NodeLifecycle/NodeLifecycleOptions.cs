using Microsoft.Extensions.Options;

namespace Hypercore.Store.Kubernetes.NodeLifecycle;

/// <summary>
/// The node lifecycle controller (section "NodeLifecycle"): one daemon of the cluster, chosen by a
/// coordination.k8s.io Lease, marks the MicroVMs of a deleted node (or one NotReady too long) NodeLost and releases
/// their finalizers, so that deleting them completes.
/// </summary>
public sealed class NodeLifecycleOptions
{
    public const string Section = "NodeLifecycle";

    /// <summary>Whether this daemon takes part (stands for the Lease). Default true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How often the leader looks at the nodes (and followers try for the Lease). Default 10 s.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a node may be NotReady (Ready condition not True) before its MicroVMs are NodeLost. Default 5 min.</summary>
    public TimeSpan NotReadyTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long a leader's Lease holds without renewal. Default 30 s.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    public string LeaseName { get; set; } = "hypercore-node-lifecycle";

    /// <summary>Namespace of the Lease; empty: $POD_NAMESPACE, else "default".</summary>
    public string LeaseNamespace { get; set; } = "";

    public string EffectiveLeaseNamespace =>
        LeaseNamespace.Length > 0 ? LeaseNamespace : Environment.GetEnvironmentVariable("POD_NAMESPACE") is { Length: > 0 } ns ? ns : "default";
}

internal sealed class NodeLifecycleOptionsValidator : IValidateOptions<NodeLifecycleOptions>
{
    public ValidateOptionsResult Validate(string? name, NodeLifecycleOptions o)
    {
        var errors = new List<string>();
        if (o.CheckInterval <= TimeSpan.Zero || o.NotReadyTimeout <= TimeSpan.Zero || o.LeaseDuration <= TimeSpan.Zero)
        {
            errors.Add("NodeLifecycle:CheckInterval, NotReadyTimeout and LeaseDuration must be positive");
        }
        else if (o.LeaseDuration <= o.CheckInterval)
        {
            errors.Add($"NodeLifecycle:LeaseDuration ({o.LeaseDuration}) must be longer than CheckInterval ({o.CheckInterval}), or the leader loses its Lease between renewals");
        }

        if (string.IsNullOrWhiteSpace(o.LeaseName))
        {
            errors.Add("NodeLifecycle:LeaseName must not be empty");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

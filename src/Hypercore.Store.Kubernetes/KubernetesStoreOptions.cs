using Microsoft.Extensions.Options;

namespace Hypercore.Store.Kubernetes;

/// <summary>Settings of the Kubernetes store (section "Kubernetes").</summary>
public sealed class KubernetesStoreOptions
{
    public const string Section = "Kubernetes";

    /// <summary>
    /// Path of a kubeconfig file. Empty: the in-cluster service account when running in a pod, else
    /// <c>$KUBECONFIG</c>, else <c>~/.kube/config</c>.
    /// </summary>
    public string Kubeconfig { get; set; } = "";

    /// <summary>kubeconfig context to use; empty means the file's current context.</summary>
    public string Context { get; set; } = "";

    /// <summary>Namespace whose MicroVMs this daemon sees; empty means all namespaces (needs a ClusterRole).</summary>
    public string Namespace { get; set; } = "";

    /// <summary>
    /// This node's name. Only MicroVMs whose <c>spec.nodeName</c> or label <c>hypercore.vistara.dev/node</c> equals it
    /// are visible. In a DaemonSet it comes from the pod's <c>spec.nodeName</c>. Default: the host name.
    /// </summary>
    public string NodeName { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>Time one API request may take before it is abandoned (and retried). Default 15 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Retries of a request that failed with a 5xx, 429 or a connection error. Default 3.</summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>First retry delay; doubles per retry, with jitter. Default 200 ms.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Server-side lifetime of one watch request; each request adds up to 100 % jitter. Default 5 minutes.</summary>
    public TimeSpan WatchTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>First delay before a lost watch is reopened; doubles while reconnects fail, with jitter. Default 500 ms.</summary>
    public TimeSpan ReconnectBaseDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Cap of the reconnect delay. Default 30 s.</summary>
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Component name written as the source of Kubernetes Events. Default "vistarad".</summary>
    public string EventComponent { get; set; } = "vistarad";
}

internal sealed partial class KubernetesStoreOptionsValidator : IValidateOptions<KubernetesStoreOptions>
{
    [System.Text.RegularExpressions.GeneratedRegex("^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\\z")]
    private static partial System.Text.RegularExpressions.Regex LabelValue();

    public ValidateOptionsResult Validate(string? name, KubernetesStoreOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.NodeName))
        {
            errors.Add("Kubernetes:NodeName must not be empty (the daemon only reconciles MicroVMs assigned to its node)");
        }
        else if (o.NodeName.Length > 63 || !LabelValue().IsMatch(o.NodeName))
        {
            errors.Add($"Kubernetes:NodeName \"{o.NodeName}\" cannot be a label value (63 characters at most: letters, digits, '-', '_', '.')");
        }

        if (o.Namespace.Length > 0 && !Hypercore.MicroVms.MicroVmSpecValidator.IsName(o.Namespace))
        {
            errors.Add($"Kubernetes:Namespace \"{o.Namespace}\" is not a valid namespace name");
        }

        if (o.Kubeconfig.Length > 0 && !File.Exists(o.Kubeconfig))
        {
            errors.Add($"Kubernetes:Kubeconfig \"{o.Kubeconfig}\" does not exist");
        }

        if (o.RequestTimeout <= TimeSpan.Zero)
        {
            errors.Add("Kubernetes:RequestTimeout must be positive");
        }

        if (o.MaxRetries is < 0 or > 10)
        {
            errors.Add($"Kubernetes:MaxRetries must be between 0 and 10, got {o.MaxRetries}");
        }

        if (o.RetryBaseDelay <= TimeSpan.Zero)
        {
            errors.Add("Kubernetes:RetryBaseDelay must be positive");
        }

        if (o.WatchTimeout < TimeSpan.FromSeconds(1))
        {
            errors.Add("Kubernetes:WatchTimeout must be at least 1 s");
        }

        if (o.ReconnectBaseDelay <= TimeSpan.Zero || o.ReconnectMaxDelay < o.ReconnectBaseDelay)
        {
            errors.Add("Kubernetes:ReconnectBaseDelay must be positive and not above Kubernetes:ReconnectMaxDelay");
        }

        if (string.IsNullOrWhiteSpace(o.EventComponent))
        {
            errors.Add("Kubernetes:EventComponent must not be empty");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

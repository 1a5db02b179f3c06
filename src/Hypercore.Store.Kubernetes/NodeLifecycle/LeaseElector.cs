using System.Text.Json.Nodes;
using Hypercore.Store.Kubernetes.Client;

namespace Hypercore.Store.Kubernetes.NodeLifecycle;

/// <summary>
/// Leader election over one coordination.k8s.io Lease, as client-go's leaderelection does it: the holder renews
/// renewTime; anyone may take the Lease once renewTime + leaseDurationSeconds has passed. Writes carry the
/// resourceVersion they read, so two candidates never both win.
/// </summary>
public sealed class LeaseElector
{
    private readonly KubernetesApiClient _client;
    private readonly string _identity;
    private readonly NodeLifecycleOptions _options;
    private readonly TimeProvider _time;

    public LeaseElector(KubernetesApiClient client, string identity, NodeLifecycleOptions options, TimeProvider time)
    {
        _client = client;
        _identity = identity;
        _options = options;
        _time = time;
    }

    public string Identity => _identity;

    /// <summary>True when this candidate holds the Lease after the call (acquired or renewed).</summary>
    public async Task<bool> TryAcquireOrRenewAsync(CancellationToken ct)
    {
        var ns = _options.EffectiveLeaseNamespace;
        var now = _time.GetUtcNow();
        JsonObject? lease;
        try
        {
            lease = await _client.CoordinationV1.ReadNamespacedLeaseAsync(_options.LeaseName, ns, cancellationToken: ct);
        }
        catch (KubernetesApiException ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            lease = null;
        }

        var seconds = (int)Math.Ceiling(_options.LeaseDuration.TotalSeconds);
        try
        {
            if (lease is null)
            {
                await _client.CoordinationV1.CreateNamespacedLeaseAsync(new JsonObject
                {
                    ["apiVersion"] = "coordination.k8s.io/v1",
                    ["kind"] = "Lease",
                    ["metadata"] = new JsonObject { ["name"] = _options.LeaseName, ["namespace"] = ns },
                    ["spec"] = new JsonObject
                    {
                        ["holderIdentity"] = _identity, ["leaseDurationSeconds"] = seconds,
                        ["acquireTime"] = KubernetesApiClient.FormatTime(now), ["renewTime"] = KubernetesApiClient.FormatTime(now), ["leaseTransitions"] = 0,
                    },
                }, ns, cancellationToken: ct);
                return true;
            }

            if (lease["spec"] is not JsonObject spec)
            {
                lease["spec"] = spec = new JsonObject();
            }

            var mine = (string?)spec["holderIdentity"] == _identity;
            var expired = KubernetesApiClient.ParseTime(spec["renewTime"]) is not { } renewed ||
                          renewed.AddSeconds((int?)spec["leaseDurationSeconds"] ?? seconds) < now;
            if (!mine && !expired)
            {
                return false;
            }

            if (!mine)
            {
                spec["holderIdentity"] = _identity;
                spec["acquireTime"] = KubernetesApiClient.FormatTime(now);
                spec["leaseTransitions"] = ((int?)spec["leaseTransitions"] ?? 0) + 1;
            }

            spec["renewTime"] = KubernetesApiClient.FormatTime(now);
            spec["leaseDurationSeconds"] = seconds;
            await _client.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, _options.LeaseName, ns, cancellationToken: ct);
            return true;
        }
        catch (KubernetesApiException ex) when (ex.StatusCode is System.Net.HttpStatusCode.Conflict)
        {
            return false; // another candidate wrote the Lease first
        }
    }
}

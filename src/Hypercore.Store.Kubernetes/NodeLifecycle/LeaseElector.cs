using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Hypercore.Store.Kubernetes.NodeLifecycle;

/// <summary>
/// Leader election over one coordination.k8s.io Lease, as client-go's leaderelection does it: the holder renews
/// renewTime; anyone may take the Lease once renewTime + leaseDurationSeconds has passed. Writes carry the
/// resourceVersion they read, so two candidates never both win.
/// </summary>
public sealed class LeaseElector
{
    private readonly IKubernetes _client;
    private readonly string _identity;
    private readonly NodeLifecycleOptions _options;
    private readonly TimeProvider _time;

    public LeaseElector(IKubernetes client, string identity, NodeLifecycleOptions options, TimeProvider time)
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
        var now = _time.GetUtcNow().UtcDateTime;
        V1Lease? lease;
        try
        {
            lease = await _client.CoordinationV1.ReadNamespacedLeaseAsync(_options.LeaseName, ns, cancellationToken: ct);
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            lease = null;
        }

        var seconds = (int)Math.Ceiling(_options.LeaseDuration.TotalSeconds);
        try
        {
            if (lease is null)
            {
                await _client.CoordinationV1.CreateNamespacedLeaseAsync(new V1Lease
                {
                    Metadata = new V1ObjectMeta { Name = _options.LeaseName, NamespaceProperty = ns },
                    Spec = new V1LeaseSpec { HolderIdentity = _identity, LeaseDurationSeconds = seconds, AcquireTime = now, RenewTime = now, LeaseTransitions = 0 },
                }, ns, cancellationToken: ct);
                return true;
            }

            var spec = lease.Spec ??= new V1LeaseSpec();
            var mine = spec.HolderIdentity == _identity;
            var expired = spec.RenewTime is not { } renewed ||
                          renewed.ToUniversalTime().AddSeconds(spec.LeaseDurationSeconds ?? seconds) < now;
            if (!mine && !expired)
            {
                return false;
            }

            if (!mine)
            {
                spec.HolderIdentity = _identity;
                spec.AcquireTime = now;
                spec.LeaseTransitions = (spec.LeaseTransitions ?? 0) + 1;
            }

            spec.RenewTime = now;
            spec.LeaseDurationSeconds = seconds;
            await _client.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, _options.LeaseName, ns, cancellationToken: ct);
            return true;
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode is System.Net.HttpStatusCode.Conflict)
        {
            return false; // another candidate wrote the Lease first
        }
    }
}

using Hypercore.MicroVms;
using Hypercore.Store;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Hypercore.Api.HealthChecks;

/// <summary>Healthy while the store answers a read; the gRPC health service reports NOT_SERVING otherwise.</summary>
internal sealed class StoreHealthCheck : IHealthCheck
{
    private static readonly VmKey Probe = new(MicroVmSpec.DefaultNamespace, "hypercore-health-probe");

    private readonly IMicroVmStore _store;

    public StoreHealthCheck(IMicroVmStore store) => _store = store;

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await _store.GetAsync(Probe, cancellationToken);
            return HealthCheckResult.Healthy($"{_store.Name} store answers");
        }
        catch (StoreException ex)
        {
            return HealthCheckResult.Unhealthy($"{_store.Name} store: {ex.Message}", ex);
        }
    }
}

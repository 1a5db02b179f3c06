using Hypercore.MicroVms;
using Hypercore.Store;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Hypercore.Api.HealthChecks;

/// <summary>Healthy while the store answers a read; the gRPC health service reports NOT_SERVING otherwise.</summary>
internal sealed class StoreHealthCheck : IHealthCheck
{
    private static readonly VmKey Probe = new(MicroVmSpec.DefaultNamespace, "hypercore-health-probe");

    private readonly IMicroVmStore _store;
    private readonly string _answers;

    public StoreHealthCheck(IMicroVmStore store)
    {
        _store = store;
        _answers = $"{store.Name} store answers"; // issue 15 (call12): the same text, made once instead of per check
    }

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await _store.GetAsync(Probe, cancellationToken);
            return HealthCheckResult.Healthy(_answers);
        }
        catch (StoreException ex)
        {
            return HealthCheckResult.Unhealthy($"{_store.Name} store: {ex.Message}", ex);
        }
    }
}

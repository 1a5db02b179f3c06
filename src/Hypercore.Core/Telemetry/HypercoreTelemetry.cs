using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Hypercore.Telemetry;

/// <summary>The product's one ActivitySource and one Meter (rule 7). Names are stable: dashboards depend on them.</summary>
public static class HypercoreTelemetry
{
    public const string Name = "Hypercore";

    public static readonly ActivitySource ActivitySource = new(Name);

    public static readonly Meter Meter = new(Name);

    public static readonly Histogram<double> ReconcileDuration =
        Meter.CreateHistogram<double>("hypercore.reconcile.duration", "s", "Time of one reconcile of one MicroVM.");

    public static readonly Counter<long> ReconcileErrors =
        Meter.CreateCounter<long>("hypercore.reconcile.errors", "{error}", "Reconciles that failed and were requeued with backoff.");

    public static readonly Counter<long> DriverErrors =
        Meter.CreateCounter<long>("hypercore.driver.errors", "{error}", "Driver calls that failed, by provider and operation.");

    public static readonly Histogram<double> BootTime =
        Meter.CreateHistogram<double>("hypercore.vm.start.duration", "s", "Driver start call until the hypervisor reports the VM running.");

    // Guest health (issue 14).
    public static readonly Histogram<double> GuestReadyTime =
        Meter.CreateHistogram<double>("hypercore.vm.guest_ready.duration", "s", "Create until the readiness probe first succeeded (each VM's boot SLO).");

    public static readonly Counter<long> LivenessFailures =
        Meter.CreateCounter<long>("hypercore.vm.liveness.failures", "{restart}", "VMs ended because their liveness probe failed, by probe kind.");
}

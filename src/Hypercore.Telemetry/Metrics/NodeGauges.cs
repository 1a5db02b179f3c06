using System.Diagnostics.Metrics;
using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Telemetry.Metrics;

/// <summary>
/// The observable gauges of one host: reconcile queue depth and MicroVMs by phase. They live on a Meter named
/// <see cref="HypercoreTelemetry.Name"/> made by the host's <see cref="IMeterFactory"/>, so they go away with the
/// host (two hosts in one test process do not report each other's numbers).
/// </summary>
public sealed class NodeGauges : IDisposable
{
    public const string QueueDepthName = "hypercore.reconcile.queue.depth";
    public const string MicroVmsName = "hypercore.microvms";

    private readonly Meter _meter;

    public NodeGauges(IMeterFactory meters, IServiceProvider services)
    {
        _meter = meters.Create(HypercoreTelemetry.Name);
        var host = services.GetService<ReconcilerHost>();
        if (host is not null)
        {
            _meter.CreateObservableGauge(QueueDepthName, () => host.Queue.Depth, "{key}", "MicroVM keys waiting for a reconcile worker.");
        }

        var counter = services.GetService<PhaseCounter>();
        if (counter is not null)
        {
            _meter.CreateObservableGauge(
                MicroVmsName,
                () => counter.Snapshot().Select(c => new Measurement<int>(c.Count, new KeyValuePair<string, object?>("phase", c.Phase.ToString()))),
                "{microvm}",
                "MicroVMs in the store by observed phase.");
        }
    }

    public void Dispose() => _meter.Dispose();
}

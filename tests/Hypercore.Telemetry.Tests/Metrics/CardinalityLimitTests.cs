using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;

namespace Hypercore.Telemetry.Tests.Metrics;

/// <summary>
/// The metric points each stream keeps (issue 15, rss3): request-tagged streams keep every route, fixed-tag streams keep
/// 64 and count the rest under otel.metric.overflow. Instruments are created on meters named like the framework's, so
/// the daemon's own views apply to them.
/// </summary>
public class CardinalityLimitTests
{
    private static (ServiceProvider Services, List<Metric> Exported) Provider()
    {
        var exported = new List<Metric>();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddHypercoreTelemetry(o => o.Prometheus = false);
        services.ConfigureOpenTelemetryMeterProvider(b => b.AddInMemoryExporter(exported));
        var provider = services.BuildServiceProvider();
        _ = provider.GetRequiredService<MeterProvider>();
        return (provider, exported);
    }

    private static List<MetricPoint> Points(List<Metric> exported, string name)
    {
        var points = new List<MetricPoint>();
        foreach (var metric in exported.Where(m => m.Name == name))
        {
            foreach (ref readonly var point in metric.GetMetricPoints())
            {
                points.Add(point);
            }
        }

        return points;
    }

    private static bool IsOverflow(MetricPoint point)
    {
        foreach (var tag in point.Tags)
        {
            if (tag.Key == "otel.metric.overflow")
            {
                return true;
            }
        }

        return false;
    }

    [Test]
    public void HttpServerDuration_300Routes_EveryRouteKept()
    {
        var (services, exported) = Provider();
        using var _ = services;
        using var meter = new Meter("Microsoft.AspNetCore.Hosting");
        var duration = meter.CreateHistogram<double>("http.server.request.duration", "s");
        for (var i = 0; i < 300; i++)
        {
            duration.Record(0.01, new KeyValuePair<string, object?>("http.route", $"/v1/route{i}"));
        }

        services.GetRequiredService<MeterProvider>().ForceFlush();

        var points = Points(exported, "http.server.request.duration");
        points.Should().HaveCount(300);
        points.Should().NotContain(p => IsOverflow(p));
    }

    [Test]
    public void FixedTagStream_MoreTagSetsThanItsLimit_RestCountedAsOverflow()
    {
        var (services, exported) = Provider();
        using var _ = services;
        using var meter = new Meter("System.Runtime");
        var collections = meter.CreateCounter<long>("dotnet.gc.collections");
        for (var i = 0; i < TelemetryServiceCollectionExtensions.MetricPointsPerFixedTagStream + 10; i++)
        {
            collections.Add(1, new KeyValuePair<string, object?>("gc.heap.generation", $"gen{i}"));
        }

        services.GetRequiredService<MeterProvider>().ForceFlush();

        var points = Points(exported, "dotnet.gc.collections");
        points.Should().Contain(p => IsOverflow(p), "tag sets past the limit are still counted");
        points.Where(p => IsOverflow(p)).Sum(p => p.GetSumLong()).Should().BeGreaterThanOrEqualTo(10);
    }
}

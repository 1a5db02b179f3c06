using Hypercore.Benchmarks.Api;

namespace Hypercore.Benchmarks.Tests.Api;

/// <summary>
/// The api-daemon child's GC figures from the daemon's /metrics (issue 15): the measured window's collections per
/// generation and their pause, the figures that say whether a blocking gen2 fell into the window that sets the p99.
/// </summary>
public class DaemonGcMetricsTests
{
    // The lines as the Native AOT daemon's Prometheus endpoint writes them (other lines omitted).
    private static string Scrape(int gen0, int gen1, int gen2, double pauseSeconds) => $$"""
        # TYPE dotnet_gc_collections_total counter
        dotnet_gc_collections_total{otel_scope_name="System.Runtime",gc_heap_generation="gen2"} {{gen2}}
        dotnet_gc_collections_total{otel_scope_name="System.Runtime",gc_heap_generation="gen1"} {{gen1}}
        dotnet_gc_collections_total{otel_scope_name="System.Runtime",gc_heap_generation="gen0"} {{gen0}}
        dotnet_gc_heap_total_allocated_bytes_total{otel_scope_name="System.Runtime"} 8725432
        dotnet_gc_pause_time_seconds_total{otel_scope_name="System.Runtime"} {{pauseSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}}
        """;

    [Test]
    public void Parse_ReadsEachGenerationThePauseAndTheAllocation()
    {
        var values = DaemonGcMetrics.Parse(Scrape(12, 3, 1, 0.0625));

        values.Should().BeEquivalentTo(new Dictionary<string, double>
        {
            ["gen0"] = 12, ["gen1"] = 3, ["gen2"] = 1, ["pause_s"] = 0.0625, ["allocated"] = 8725432,
        });
    }

    [Test]
    public void Parse_ReadsTheRecordsByPhase_WhichTheRunningLoadWaitsFor()
    {
        var values = DaemonGcMetrics.Parse("""
            # TYPE hypercore_microvms gauge
            hypercore_microvms{otel_scope_name="Hypercore",phase="Pending"} 3
            hypercore_microvms{otel_scope_name="Hypercore",phase="Running"} 1234
            """);

        values[DaemonGcMetrics.PhaseKey("Running")].Should().Be(1234);
        values[DaemonGcMetrics.PhaseKey("Pending")].Should().Be(3);
    }

    [Test]
    public void Parse_SumsTheReconcilePassesOfEverySeries()
    {
        var values = DaemonGcMetrics.Parse("""
            hypercore_reconcile_duration_seconds_count{otel_scope_name="Hypercore",result="ok"} 900
            hypercore_reconcile_duration_seconds_count{otel_scope_name="Hypercore",result="requeue"} 35
            hypercore_reconcile_duration_seconds_sum{otel_scope_name="Hypercore",result="ok"} 4.5
            """);

        values[DaemonGcMetrics.Passes].Should().Be(935);
    }

    [Test]
    public void HeapAfterLastCollection_SumsEveryGeneration()
    {
        var values = DaemonGcMetrics.Parse("""
            dotnet_gc_last_collection_heap_size_bytes{otel_scope_name="System.Runtime",gc_heap_generation="gen0"} 1000
            dotnet_gc_last_collection_heap_size_bytes{otel_scope_name="System.Runtime",gc_heap_generation="gen1"} 200
            dotnet_gc_last_collection_heap_size_bytes{otel_scope_name="System.Runtime",gc_heap_generation="gen2"} 30000
            dotnet_gc_last_collection_heap_size_bytes{otel_scope_name="System.Runtime",gc_heap_generation="loh"} 4000
            dotnet_gc_last_collection_heap_size_bytes{otel_scope_name="System.Runtime",gc_heap_generation="poh"} 5
            dotnet_gc_last_collection_heap_fragmentation_size_bytes{otel_scope_name="System.Runtime",gc_heap_generation="gen2"} 777
            """);

        DaemonGcMetrics.HeapAfterLastCollection(values).Should().Be(35205);
    }

    [Test]
    public void ReportWindow_CountsEachCollectionOnceUnderItsGeneration_AndThePausePerCollection()
    {
        // The meter counts a gen2 collection under gen2 only (not also under gen0 and gen1, as GC.CollectionCount does).
        var start = DaemonGcMetrics.Parse(Scrape(10, 4, 1, 0.100));
        var end = DaemonGcMetrics.Parse(Scrape(40, 14, 3, 0.340));
        var result = new Dictionary<string, double>();

        DaemonGcMetrics.ReportWindow(result, start, end);

        result["daemon_window_gen0"].Should().Be(30);
        result["daemon_window_gen1"].Should().Be(10);
        result["daemon_window_gen2"].Should().Be(2);
        result["daemon_window_pause_ms"].Should().BeApproximately(240, 1e-9);
        result["daemon_window_pause_ms_per_gc"].Should().BeApproximately(240.0 / 42, 1e-9);
        DaemonGcMetrics.WindowText(result).Should().Be(
            "; daemon GC in the window: 30 gen0, 10 gen1, 2 gen2 collections, 240 ms paused (5.7 ms each)");
    }

    [Test]
    public void ReportWindow_WithoutAReading_AddsNothing_AndTheRowSaysNothing()
    {
        var result = new Dictionary<string, double>();

        DaemonGcMetrics.ReportWindow(result, null, DaemonGcMetrics.Parse(Scrape(1, 0, 0, 0.001)));

        result.Should().BeEmpty();
        DaemonGcMetrics.WindowText(result).Should().BeEmpty();
    }
}

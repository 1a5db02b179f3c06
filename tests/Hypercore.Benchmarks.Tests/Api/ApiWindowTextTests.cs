using Hypercore.Benchmarks.Api;

namespace Hypercore.Benchmarks.Tests.Api;

/// <summary>The in-process rows say how the node's code was compiled, what the JIT did in the window, and the passes per Create.</summary>
public class ApiWindowTextTests
{
    [Test]
    public void InProcessRow_SaysTheCompileSettingTheJitInTheWindowAndThePasses()
    {
        var child = new Dictionary<string, double>
        {
            ["runtime_tiered_compilation"] = 0, ["runtime_ready_to_run"] = 0,
            ["jit_methods_window"] = 53, ["jit_ms_window"] = 26.4, ["jit_methods_before"] = 7366,
            ["passes_per_create"] = 1.49, ["pass_mean_ms"] = 20.76, ["starts_per_create"] = 1.0,
        };

        var text = ApiThroughput.WindowText(child);

        text.Should().Contain("TieredCompilation=0, ReadyToRun=0").And.Contain("53 methods compiled in the window (26 ms of JIT), 7366 before it")
            .And.Contain("1.49 reconcile passes (mean 20.8 ms) and 1.00 driver starts per Create");
        DaemonGcMetrics.WindowText(child).Should().Be(text, "the in-process api-stopped row takes it through DaemonGcMetrics.WindowText");
        ApiThroughput.WindowText(new Dictionary<string, double>(child) { ["runtime_tiered_compilation"] = 1, ["runtime_ready_to_run"] = 1 })
            .Should().Contain("the JIT's defaults");
    }

    [Test]
    public void CreateRows_SayTheLoadGeneratorsOwnCpuAndCollections()
    {
        // Issue 15 (lg12): the client measures the latency, so its own pauses are part of the measured tail.
        var child = new Dictionary<string, double>
        {
            ["client_cpu_us_per"] = 67.2, ["client_gc"] = 11, ["client_gc_pause_ms"] = 27.3, ["client_gc_pause_ms_per_gc"] = 2.48,
            ["base_client_cpu_us_per"] = 41.9, ["base_client_gc"] = 30, ["base_client_gc_pause_ms"] = 78, ["base_client_gc_pause_ms_per_gc"] = 2.6,
        };

        LoadGenerator.ClientText(child).Should().Be("; load generator (not counted as the server's): 67 µs CPU per call, 11 collections in the window, 27 ms paused (2.5 ms each)");
        LoadGenerator.ClientText(child, "base_").Should().Contain("42 µs CPU per call, 30 collections in the window");
        LoadGenerator.ClientText(new Dictionary<string, double>()).Should().BeEmpty("a result without the keys (an older runner's) says nothing");
    }

    [Test]
    public void CreateRows_SayWhenTheLoadGeneratorWasTheNativeOne()
    {
        // Issue 15 (lg19): the native load generator reports no collections (it has no collector); its row says which it was.
        var child = new Dictionary<string, double> { ["client_cpu_us_per"] = 19.6, ["client_gc"] = 0, ["client_gc_pause_ms"] = 0, ["client_gc_pause_ms_per_gc"] = 0, ["client_native"] = 1 };

        LoadGenerator.ClientText(child).Should().Be("; load generator native (C, libnghttp2, one thread; not counted as the server's): 20 µs CPU per call");
    }
}

using System.Net.Http.Json;
using Hypercore.Telemetry.Tests.Hosting;
using Hypercore.Testing;

namespace Hypercore.Telemetry.Tests.Daemon;

/// <summary>
/// The real vistarad process serves /metrics on its HTTP endpoint and takes --otlp-endpoint. A VM whose kernel does
/// not exist moves the phase, reconcile and driver-error metrics without any hypervisor running.
/// </summary>
[NonParallelizable]
public class DaemonTelemetryTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(90);
    private static string Vistarad => Path.Combine(AppContext.BaseDirectory, "vistarad.dll");

    private DirectoryInfo _state = null!;

    [SetUp]
    public void SetUp() => _state = Directory.CreateTempSubdirectory("hypercore-telemetry-daemon-");

    [TearDown]
    public void TearDown() => _state.Delete(recursive: true);

    [Test]
    public async Task Daemon_MetricsEndpoint_PhaseReconcileAndDriverErrorsMoveWhenAVmIsCreated()
    {
        await using var daemon = DaemonProcess.Start(Vistarad, "run", "--state-dir", _state.FullName,
            "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", "--qemu-accel", "tcg", "--log-format", "json");
        var (_, http) = await daemon.WaitReadyAsync(Wait);
        using var client = new HttpClient { BaseAddress = new Uri(http), Timeout = Wait };
        var before = await client.GetStringAsync("/metrics");
        TelemetryTestHost.Sample(before, "hypercore_microvms", ("phase", "Failed")).Should().Be(0);

        using var created = await client.PostAsJsonAsync("/v1/microvms", new
        {
            microvm = new { id = "nokernel", @namespace = "metrics", vcpu = 1, memoryInMb = 128, kernel = new { image = Path.Combine(_state.FullName, "images", "missing", "vmlinuz") } },
        });
        created.EnsureSuccessStatusCode();

        // The pass records its duration after its Failed write returns, and the phase gauge counts that write as soon as
        // the informer has it: a scrape between the two sees Failed and no duration yet, so both are waited for.
        var deadline = DateTime.UtcNow + Wait;
        string scrape;
        do
        {
            await Task.Delay(200);
            scrape = await client.GetStringAsync("/metrics");
        }
        while ((TelemetryTestHost.Sample(scrape, "hypercore_microvms", ("phase", "Failed")) != 1 ||
                TelemetryTestHost.Sample(scrape, "hypercore_reconcile_duration_seconds_count") is null) && DateTime.UtcNow < deadline);

        TelemetryTestHost.Sample(scrape, "hypercore_microvms", ("phase", "Failed")).Should().Be(1, scrape);
        TelemetryTestHost.Sample(scrape, "hypercore_reconcile_duration_seconds_count").Should().BeGreaterThanOrEqualTo(1);
        TelemetryTestHost.Sample(scrape, "hypercore_driver_errors_total", ("provider", "qemu"), ("operation", "start")).Should().BeGreaterThanOrEqualTo(1);
        TelemetryTestHost.Sample(scrape, "hypercore_reconcile_queue_depth").Should().NotBeNull();
        daemon.Stderr.Should().Contain("\"TraceId\"", "JSON log lines written inside an API call carry its trace id");
    }

    [Test]
    public async Task Daemon_BadOtlpEndpoint_ExitsWithCode2NamingTheFlag()
    {
        var (code, _, stderr) = await DaemonProcess.RunAsync(Vistarad, Wait, "run", "--state-dir", _state.FullName,
            "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", "--otlp-endpoint", "collector:4317");

        code.Should().Be(2);
        stderr.Should().Contain("otlp-endpoint: \"collector:4317\" is not an http(s)://host:port address");
    }
}

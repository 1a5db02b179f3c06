using Hypercore.Contracts.VmApi;
using Hypercore.Drivers;
using Hypercore.Telemetry.Tests.Hosting;

namespace Hypercore.Telemetry.Tests.Metrics;

/// <summary>GET /metrics on the HTTP endpoint serves hypercore_* metrics that move when VMs are created and deleted.</summary>
[NonParallelizable]
public class PrometheusEndpointTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private TelemetryTestHost _host = null!;

    [SetUp]
    public async Task SetUp() => _host = await TelemetryTestHost.StartAsync();

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    private static double Value(string scrape, string name, params (string, string)[] labels) =>
        TelemetryTestHost.Sample(scrape, name, labels) ?? 0;

    private MicroVMSpec Spec(string id) => new() { Id = id, Namespace = "metrics", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = _host.KernelPath } };

    [Test]
    public async Task Scrape_VmCreatedThenDeleted_ReconcilePhaseAndBootMetricsMove()
    {
        var vms = new VMService.VMServiceClient(_host.Channel);
        var before = await _host.ScrapeAsync();
        TelemetryTestHost.Sample(before, "hypercore_microvms", ("phase", "Running")).Should().Be(0, "every phase is reported, zero included");
        TelemetryTestHost.Sample(before, "hypercore_reconcile_queue_depth").Should().NotBeNull();
        var reconciles = Value(before, "hypercore_reconcile_duration_seconds_count");
        var boots = Value(before, "hypercore_vm_start_duration_seconds_count");

        await vms.CreateAsync(new CreateMicroVMRequest { Microvm = Spec("m1") });
        var running = await _host.ScrapeUntilAsync(s => Value(s, "hypercore_microvms", ("phase", "Running")) == 1, Wait);

        Value(running, "hypercore_microvms", ("phase", "Running")).Should().Be(1);
        Value(running, "hypercore_microvms", ("phase", "Pending")).Should().Be(0);
        Value(running, "hypercore_reconcile_duration_seconds_count").Should().BeGreaterThan(reconciles);
        Value(running, "hypercore_vm_start_duration_seconds_count").Should().BeGreaterThan(boots);
        TelemetryTestHost.Sample(running, "hypercore_reconcile_duration_seconds_bucket", ("le", "0.001")).Should().NotBeNull("durations in seconds get sub-second buckets");
        TelemetryTestHost.Sample(running, "http_server_request_duration_seconds_count", ("http_route", "/vm.services.api.VMService/Create"))
            .Should().BeGreaterThanOrEqualTo(1, "API calls are measured too");

        await vms.DeleteAsync(new DeleteMicroVMRequest { Id = "m1", Namespace = "metrics" });
        var gone = await _host.ScrapeUntilAsync(s => Value(s, "hypercore_microvms", ("phase", "Running")) == 0 && Value(s, "hypercore_microvms", ("phase", "Deleting")) == 0, Wait);

        Value(gone, "hypercore_microvms", ("phase", "Running")).Should().Be(0);
        (await _host.Store.ListAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Scrape_DriverStartFails_DriverErrorsCountedByProviderAndOperation()
    {
        _host.Driver.StartFailures["bad"] = new DriverException("KernelNotFound", "no kernel");
        var before = Value(await _host.ScrapeAsync(), "hypercore_driver_errors_total", ("provider", "qemu"), ("operation", "start"));

        await new VMService.VMServiceClient(_host.Channel).CreateAsync(new CreateMicroVMRequest { Microvm = Spec("bad") });
        var after = await _host.ScrapeUntilAsync(
            s => Value(s, "hypercore_driver_errors_total", ("provider", "qemu"), ("operation", "start")) > before &&
                 Value(s, "hypercore_microvms", ("phase", "Failed")) == 1,
            Wait);

        Value(after, "hypercore_driver_errors_total", ("provider", "qemu"), ("operation", "start"), ("reason", "KernelNotFound")).Should().BeGreaterThan(before);
        Value(after, "hypercore_microvms", ("phase", "Failed")).Should().Be(1);
    }

    [Test]
    public async Task Scrape_RuntimeMetrics_ReportProcessMemory()
    {
        var scrape = await _host.ScrapeAsync();

        Value(scrape, "dotnet_process_memory_working_set_bytes").Should().BeGreaterThan(1_000_000);
    }

    [Test]
    public async Task Scrape_PrometheusDisabled_NoEndpoint()
    {
        await using var host = await TelemetryTestHost.StartAsync(o => o.Prometheus = false);

        using var response = await host.Http.GetAsync("/metrics");

        response.StatusCode.Should().Be(System.Net.HttpStatusCode.NotFound);
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Hypercore.Contracts.VmApi;
using Hypercore.Telemetry.Tests.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Hypercore.Telemetry.Tests.Tracing;

/// <summary>What the host's OpenTelemetry pipeline exports: a server span per API call, reconcile traces, OTLP.</summary>
[NonParallelizable]
public class ExportTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private static MicroVMSpec Spec(TelemetryTestHost host, string id) =>
        new() { Id = id, Namespace = "traces", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = host.KernelPath } };

    private static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (!condition() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
    }

    [Test]
    public async Task ApiCall_TracingOn_OneServerSpanPerCallAndAReconcileTraceWithDriverSpans()
    {
        var exported = new List<Activity>();
        await using var host = await TelemetryTestHost.StartAsync(
            o => o.Tracing = true,
            s => s.ConfigureOpenTelemetryTracerProvider(b => b.AddInMemoryExporter(exported)));
        var vms = new VMService.VMServiceClient(host.Channel);
        var tracer = host.Services.GetRequiredService<TracerProvider>();

        string[] calls = ["/vm.services.api.VMService/Create", "/vm.services.api.VMService/Get"];
        var created = (await vms.CreateAsync(new CreateMicroVMRequest { Microvm = Spec(host, "t1") })).Microvm;
        await vms.GetAsync(new GetMicroVMRequest { Id = "t1", Namespace = "traces" });
        await host.ScrapeAsync();
        await Until(() => host.Driver.Live(created.Spec.Uid) is not null);
        Activity[] spans = [];
        await Until(() =>
        {
            tracer.ForceFlush();
            lock (exported)
            {
                spans = [.. exported];
            }

            // A server span ends after its response is sent (Kestrel stops the request's activity when it disposes the
            // request's context), so the client can hold the Get's answer before its span is exported: wait for it too.
            var routes = spans.Where(a => a.Kind == ActivityKind.Server).Select(a => a.GetTagItem("http.route") as string).ToHashSet();
            return spans.Any(a => a.OperationName == "driver.start") && calls.All(routes.Contains);
        });

        var server = spans.Where(a => a.Kind == ActivityKind.Server).ToList();
        server.Select(a => a.GetTagItem("http.route")).Should().Contain(calls);
        server.Select(a => a.TraceId).Distinct().Should().HaveCount(server.Count, "each API call is a trace of its own");
        server.Should().NotContain(a => (string?)a.GetTagItem("url.path") == "/metrics", "scrapes are not traced");
        var reconcile = spans.First(a => a.OperationName == "reconcile" && (string?)a.GetTagItem("microvm") == "traces/t1");
        spans.Where(a => a.ParentSpanId == reconcile.SpanId).Select(a => a.OperationName).Should().Contain(["driver.inspect", "driver.start"]);
    }

    [Test]
    public async Task Tracing_NoOtlpEndpointAndNotAskedFor_NoTracerProvider()
    {
        // The environment this runs in may set the variable; the test is about a node where nothing sets it.
        var saved = Environment.GetEnvironmentVariable(HypercoreTelemetryOptions.OtlpEndpointVariable);
        Environment.SetEnvironmentVariable(HypercoreTelemetryOptions.OtlpEndpointVariable, null);
        try
        {
            await using var host = await TelemetryTestHost.StartAsync();

            host.Services.GetService<TracerProvider>().Should().BeNull("spans nobody exports would only cost CPU");
            host.Services.GetService<MeterProvider>().Should().NotBeNull();
        }
        finally
        {
            Environment.SetEnvironmentVariable(HypercoreTelemetryOptions.OtlpEndpointVariable, saved);
        }
    }

    [Test]
    public async Task Otlp_HttpProtobufEndpoint_ReceivesTracesAndMetrics()
    {
        await using var collector = await FakeCollector.StartAsync();
        await using var host = await TelemetryTestHost.StartAsync(o =>
        {
            o.OtlpEndpoint = collector.Address;
            o.OtlpProtocol = HypercoreTelemetryOptions.ProtocolHttpProtobuf;
        });
        var vms = new VMService.VMServiceClient(host.Channel);

        await vms.CreateAsync(new CreateMicroVMRequest { Microvm = Spec(host, "o1") });
        await Until(() => host.Store.ListAsync().Result.Any(v => v.Status.Phase == MicroVms.Phase.Running));
        await Until(() =>
        {
            host.Services.GetRequiredService<TracerProvider>().ForceFlush();
            host.Services.GetRequiredService<MeterProvider>().ForceFlush();
            return collector.Received.Any(r => r.Path == "/v1/traces") && collector.Received.Any(r => r.Path == "/v1/metrics");
        });

        collector.Received.Should().Contain(r => r.Path == "/v1/traces" && r.ContentType == "application/x-protobuf" && r.Bytes > 0);
        collector.Received.Should().Contain(r => r.Path == "/v1/metrics" && r.ContentType == "application/x-protobuf" && r.Bytes > 0);
    }

    [Test]
    public async Task Options_BadOtlpEndpoint_FailsTheHostAtStartNamingTheSetting()
    {
        var act = async () => await TelemetryTestHost.StartAsync(o => o.OtlpEndpoint = "ftp://collector");

        (await act.Should().ThrowAsync<OptionsValidationException>())
            .Which.Message.Should().Contain("Telemetry:OtlpEndpoint").And.Contain("ftp://collector");
    }

    [TestCase(null, null, "http://env:4317/", "grpc")]
    [TestCase("http://set:4318", "http/protobuf", "http://set:4318/", "http/protobuf")]
    public void Options_SettingWinsOverEnvironment(string? endpoint, string? protocol, string expectedEndpoint, string expectedProtocol)
    {
        var env = new Dictionary<string, string?>
        {
            [HypercoreTelemetryOptions.OtlpEndpointVariable] = "http://env:4317",
            [HypercoreTelemetryOptions.OtlpProtocolVariable] = null,
        };
        var options = new HypercoreTelemetryOptions { OtlpEndpoint = endpoint, OtlpProtocol = protocol };

        options.EffectiveOtlpEndpoint(k => env.GetValueOrDefault(k))!.ToString().Should().Be(expectedEndpoint);
        options.EffectiveOtlpProtocol(k => env.GetValueOrDefault(k)).Should().Be(expectedProtocol);
        options.EffectiveTracing(k => env.GetValueOrDefault(k)).Should().BeTrue("an OTLP endpoint turns tracing on");
        HypercoreTelemetryOptionsValidator.Errors(options, k => env.GetValueOrDefault(k)).Should().BeEmpty();
    }

    /// <summary>An OTLP/HTTP receiver on 127.0.0.1 that records what was posted to it and answers 200.</summary>
    private sealed class FakeCollector : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private FakeCollector(WebApplication app, string address)
        {
            _app = app;
            Address = address;
        }

        public string Address { get; }

        public ConcurrentQueue<(string Path, string? ContentType, long Bytes)> Received { get; } = new();

        public static async Task<FakeCollector> StartAsync()
        {
            ListenOptions? listen = null;
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => (o.Protocols, listen) = (HttpProtocols.Http1, o)));
            var app = builder.Build();
            FakeCollector? self = null;
            app.MapPost("/v1/{signal}", async (HttpContext ctx) =>
            {
                using var body = new MemoryStream();
                await ctx.Request.Body.CopyToAsync(body);
                self!.Received.Enqueue((ctx.Request.Path.Value!, ctx.Request.ContentType, body.Length));
                ctx.Response.ContentType = "application/x-protobuf";
                return Results.Bytes([]);
            });
            await app.StartAsync();
            self = new FakeCollector(app, $"http://127.0.0.1:{listen!.IPEndPoint!.Port}");
            return self;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}

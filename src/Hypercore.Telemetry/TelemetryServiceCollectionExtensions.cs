using Hypercore.Informers;
using Hypercore.Telemetry.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Hypercore.Telemetry;

public static class TelemetryServiceCollectionExtensions
{
    /// <summary>Meters exported besides Hypercore's own: HTTP/gRPC server metrics and the runtime's (GC, memory, threads).</summary>
    public static readonly IReadOnlyList<string> ExtraMeters =
        ["Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "System.Runtime"];

    /// <summary>
    /// Distinct tag sets kept per metric stream: above what a node produces (the busiest stream, HTTP server duration,
    /// has one per route, method and status: ~100 for the API), a quarter of the SDK default's up-front allocation.
    /// </summary>
    public const int MetricPointsPerStream = 500;

    /// <summary>
    /// Distinct tag sets kept per stream whose tags come from a small fixed set (GC generation, CPU mode, listen endpoint,
    /// VM phase, probe kind; the largest, Kestrel's queued requests, has endpoints × protocol versions: under 20) or that
    /// have none. The SDK allocates every stream's points up front (72 bytes each), so 500 for each of the ~40 streams
    /// was 1.4 MB of the idle daemon's live heap for about 60 points in use (issue 15, rss3). Streams whose tag values
    /// come from requests or errors (<see cref="OpenEndedStreams"/>) keep <see cref="MetricPointsPerStream"/>.
    /// </summary>
    public const int MetricPointsPerFixedTagStream = 64;

    /// <summary>Instruments whose tag sets grow with routes, status codes, error types or failure reasons.</summary>
    public static readonly IReadOnlySet<string> OpenEndedStreams = new HashSet<string>(StringComparer.Ordinal)
    {
        "http.server.request.duration", // route × method × status × protocol
        "http.server.active_requests",
        "kestrel.connection.duration", // endpoint × protocol × error.type
        "kestrel.tls_handshake.duration",
        "kestrel.rejected_connections",
        "dotnet.exceptions", // error.type
        "hypercore.driver.errors", // provider × operation × reason
    };

    /// <summary>Bucket bounds for Hypercore's duration histograms: 0.5 ms (a store commit) to 2 min (a slow TCG boot).</summary>
    public static readonly double[] SecondsBuckets =
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

    /// <summary>Adds telemetry with settings bound from <paramref name="section"/> (keys as in <see cref="HypercoreTelemetryOptions"/>).</summary>
    public static IServiceCollection AddHypercoreTelemetry(this IServiceCollection services, IConfiguration section) =>
        services.AddHypercoreTelemetry(o => section.Bind(o)); // an invocation the binder's generator can replace

    /// <summary>
    /// Adds OpenTelemetry for a Hypercore host: traces from the "Hypercore" ActivitySource (reconcile spans with
    /// driver.* child spans) and ASP.NET Core server spans (one per API call, gRPC included); metrics from the
    /// "Hypercore" Meter (reconcile duration, queue depth, MicroVMs by phase, boot time, driver errors, store
    /// commits) plus server and runtime meters; the Prometheus exporter (see <see cref="MapHypercoreMetrics"/>);
    /// OTLP export of traces and metrics when an endpoint is set or <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is.
    /// Log lines carry the trace and span id of the work they belong to. Needs an <see cref="Store.IMicroVmStore"/>
    /// (the phase gauge follows it through the shared informer); the queue-depth gauge appears when the reconciler is registered.
    /// </summary>
    public static IServiceCollection AddHypercoreTelemetry(this IServiceCollection services, Action<HypercoreTelemetryOptions>? configure = null)
    {
        var optionsBuilder = services.AddOptions<HypercoreTelemetryOptions>();
        if (configure is not null)
        {
            optionsBuilder.Configure(configure);
        }

        optionsBuilder.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<HypercoreTelemetryOptions>, HypercoreTelemetryOptionsValidator>(
            _ => new HypercoreTelemetryOptionsValidator())); // factories, not implementation types: Hypercore.Composition.ServiceFactories

        // The SDK's pipelines are fixed when the service collection is built, so which exporters exist is decided
        // now from the same settings; the validator above still reports bad values at start.
        var options = new HypercoreTelemetryOptions();
        configure?.Invoke(options);
        var valid = HypercoreTelemetryOptionsValidator.Errors(options, null).Count == 0;
        var otlp = valid ? options.EffectiveOtlpEndpoint() : null;
        var httpProtobuf = options.EffectiveOtlpProtocol() == HypercoreTelemetryOptions.ProtocolHttpProtobuf;

        services.AddSingleton(new TelemetryPlan(options.Prometheus, options.MetricsPath));
        services.TryAddSingleton(TimeProvider.System);
        services.AddMicroVmInformer();
        services.TryAddSingleton(sp => new PhaseCounter(sp.GetRequiredService<MicroVmInformer>()));
        services.AddHostedService(sp => sp.GetRequiredService<PhaseCounter>());
        services.TryAddSingleton(sp => new NodeGauges(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), sp));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, GaugeActivation>(sp => new GaugeActivation(sp.GetRequiredService<NodeGauges>())));
        services.Configure<LoggerFactoryOptions>(o => o.ActivityTrackingOptions |= ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);

        var otel = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(options.ServiceName, serviceInstanceId: options.ServiceInstanceId, autoGenerateServiceInstanceId: false))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(HypercoreTelemetry.Name).AddMeter([.. ExtraMeters]);

                // The SDK's default buckets (0..10000) suit milliseconds; these histograms are in seconds. Every stream
                // also gets a smaller cardinality limit than the SDK's 2,000: the SDK allocates that many metric points
                // for each of the ~40 instruments (Kestrel, ASP.NET Core, runtime, ours) when the meter provider is
                // built, which was a tenth of the daemon's start CPU (plus the GCs it caused) and most of its idle
                // managed heap (bench/NOTES.md, issue 15 aotdaemon). Tag sets beyond the limit are still counted, under
                // otel.metric.overflow=true.
                metrics.AddView(instrument =>
                {
                    var limit = CardinalityLimit(instrument.Name);
                    return instrument.Meter.Name == HypercoreTelemetry.Name && instrument.Unit == "s"
                        ? new ExplicitBucketHistogramConfiguration { Boundaries = SecondsBuckets, CardinalityLimit = limit }
                        : new MetricStreamConfiguration { CardinalityLimit = limit };
                });
                if (options.Prometheus)
                {
                    metrics.AddPrometheusExporter();
                }

                if (otlp is not null)
                {
                    metrics.AddOtlpExporter((exporter, reader) =>
                    {
                        Point(exporter, otlp, httpProtobuf, "v1/metrics");
                        reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)options.OtlpMetricInterval.TotalMilliseconds;
                    });
                }
            });

        if (options.EffectiveTracing())
        {
            var metricsPath = options.MetricsPath;
            otel.WithTracing(tracing =>
            {
                tracing.AddSource(HypercoreTelemetry.Name)
                    .AddAspNetCoreInstrumentation(o => o.Filter = ctx => !IsScrape(ctx, metricsPath));
                if (otlp is not null)
                {
                    tracing.AddOtlpExporter(exporter => Point(exporter, otlp, httpProtobuf, "v1/traces"));
                }
            });
        }

        return services;
    }

    /// <summary>The metric points kept for the stream of the instrument named <paramref name="instrument"/>.</summary>
    public static int CardinalityLimit(string instrument) =>
        OpenEndedStreams.Contains(instrument) ? MetricPointsPerStream : MetricPointsPerFixedTagStream;

    /// <summary>Maps the Prometheus scrape endpoint (GET /metrics by default) when Prometheus is enabled.</summary>
    public static IEndpointRouteBuilder MapHypercoreMetrics(this IEndpointRouteBuilder endpoints)
    {
        // The plan fixed at registration, not IOptions: reading options here would run their validation while the app
        // is still being built, before the host's own start-time validation can report every bad setting at once.
        var plan = endpoints.ServiceProvider.GetRequiredService<TelemetryPlan>();
        if (plan.Prometheus && plan.MetricsPath.StartsWith('/'))
        {
            endpoints.MapPrometheusScrapingEndpoint(plan.MetricsPath);
        }

        return endpoints;
    }

    private static bool IsScrape(HttpContext context, string metricsPath) =>
        context.Request.Path.Equals(metricsPath, StringComparison.OrdinalIgnoreCase);

    /// <summary>OTLP/HTTP wants the full signal URL; OTLP/gRPC the base address.</summary>
    private static void Point(OtlpExporterOptions exporter, Uri baseAddress, bool httpProtobuf, string signalPath)
    {
        exporter.Protocol = httpProtobuf ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
        exporter.Endpoint = httpProtobuf ? new Uri(baseAddress.ToString().TrimEnd('/') + "/" + signalPath) : baseAddress;
    }

    /// <summary>What AddHypercoreTelemetry decided from the settings it was given.</summary>
    private sealed record TelemetryPlan(bool Prometheus, string MetricsPath);

    /// <summary>Creates the observable gauges when the host starts (nothing else asks for them by type).</summary>
    private sealed class GaugeActivation(NodeGauges gauges) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            GC.KeepAlive(gauges);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

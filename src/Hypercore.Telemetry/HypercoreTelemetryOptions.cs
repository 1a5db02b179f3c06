using Microsoft.Extensions.Options;

namespace Hypercore.Telemetry;

/// <summary>Telemetry settings (section "Telemetry").</summary>
public sealed class HypercoreTelemetryOptions
{
    public const string Section = "Telemetry";

    /// <summary>The standard environment variables read when the matching setting is not given.</summary>
    public const string OtlpEndpointVariable = "OTEL_EXPORTER_OTLP_ENDPOINT";
    public const string OtlpProtocolVariable = "OTEL_EXPORTER_OTLP_PROTOCOL";

    public const string ProtocolGrpc = "grpc";
    public const string ProtocolHttpProtobuf = "http/protobuf";

    /// <summary>service.name of the exported resource. Default vistarad.</summary>
    public string ServiceName { get; set; } = "vistarad";

    /// <summary>service.instance.id of the exported resource, e.g. the node name. Default: the host name.</summary>
    public string ServiceInstanceId { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>
    /// OTLP collector base address (e.g. http://localhost:4317 for gRPC, http://localhost:4318 for HTTP). Empty:
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> if set, else no OTLP export.
    /// </summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>
    /// OTLP transport: "grpc" or "http/protobuf". Empty: <c>OTEL_EXPORTER_OTLP_PROTOCOL</c> if set, else grpc.
    /// With http/protobuf the signal paths /v1/traces and /v1/metrics are added to the base address.
    /// </summary>
    public string? OtlpProtocol { get; set; }

    /// <summary>How often metrics are pushed over OTLP. Default 30 s.</summary>
    public TimeSpan OtlpMetricInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Serve the Prometheus text format at <see cref="MetricsPath"/> (mapped by MapHypercoreMetrics). Default true.</summary>
    public bool Prometheus { get; set; } = true;

    /// <summary>Path of the Prometheus scrape endpoint. Default /metrics.</summary>
    public string MetricsPath { get; set; } = "/metrics";

    /// <summary>
    /// Record traces (a span per API call, per reconcile, per driver call). Null (default): only when an OTLP
    /// endpoint is configured, since spans nobody exports cost CPU on every reconcile and request.
    /// </summary>
    public bool? Tracing { get; set; }

    /// <summary>The endpoint in force: the setting, else the environment variable, else null.</summary>
    public Uri? EffectiveOtlpEndpoint(Func<string, string?>? environment = null)
    {
        var raw = string.IsNullOrWhiteSpace(OtlpEndpoint) ? (environment ?? Environment.GetEnvironmentVariable)(OtlpEndpointVariable) : OtlpEndpoint;
        return string.IsNullOrWhiteSpace(raw) ? null : Uri.TryCreate(raw.Trim(), UriKind.Absolute, out var uri) ? uri : null;
    }

    /// <summary>The protocol in force: the setting, else the environment variable, else grpc.</summary>
    public string EffectiveOtlpProtocol(Func<string, string?>? environment = null)
    {
        var raw = string.IsNullOrWhiteSpace(OtlpProtocol) ? (environment ?? Environment.GetEnvironmentVariable)(OtlpProtocolVariable) : OtlpProtocol;
        return string.IsNullOrWhiteSpace(raw) ? ProtocolGrpc : raw.Trim().ToLowerInvariant();
    }

    public bool EffectiveTracing(Func<string, string?>? environment = null) => Tracing ?? EffectiveOtlpEndpoint(environment) is not null;
}

internal sealed class HypercoreTelemetryOptionsValidator : IValidateOptions<HypercoreTelemetryOptions>
{
    public ValidateOptionsResult Validate(string? name, HypercoreTelemetryOptions o) =>
        Errors(o, null) is { Count: > 0 } errors ? ValidateOptionsResult.Fail(errors) : ValidateOptionsResult.Success;

    public static List<string> Errors(HypercoreTelemetryOptions o, Func<string, string?>? environment)
    {
        var env = environment ?? Environment.GetEnvironmentVariable;
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.ServiceName))
        {
            errors.Add("Telemetry:ServiceName must not be empty");
        }

        var endpointText = string.IsNullOrWhiteSpace(o.OtlpEndpoint) ? env(HypercoreTelemetryOptions.OtlpEndpointVariable) : o.OtlpEndpoint;
        var source = string.IsNullOrWhiteSpace(o.OtlpEndpoint) ? HypercoreTelemetryOptions.OtlpEndpointVariable : "Telemetry:OtlpEndpoint";
        if (!string.IsNullOrWhiteSpace(endpointText) &&
            (!Uri.TryCreate(endpointText.Trim(), UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Host.Length == 0))
        {
            errors.Add($"{source}: \"{endpointText}\" is not an http(s)://host:port address");
        }

        var protocol = o.EffectiveOtlpProtocol(env);
        if (protocol is not (HypercoreTelemetryOptions.ProtocolGrpc or HypercoreTelemetryOptions.ProtocolHttpProtobuf))
        {
            var protocolSource = string.IsNullOrWhiteSpace(o.OtlpProtocol) ? HypercoreTelemetryOptions.OtlpProtocolVariable : "Telemetry:OtlpProtocol";
            errors.Add($"{protocolSource}: \"{protocol}\" is not one of grpc, http/protobuf");
        }

        if (o.OtlpMetricInterval < TimeSpan.FromSeconds(1))
        {
            errors.Add($"Telemetry:OtlpMetricInterval must be at least 1 s, got {o.OtlpMetricInterval}");
        }

        if (o.Prometheus && (string.IsNullOrWhiteSpace(o.MetricsPath) || !o.MetricsPath.StartsWith('/')))
        {
            errors.Add($"Telemetry:MetricsPath must start with '/', got \"{o.MetricsPath}\"");
        }

        return errors;
    }
}

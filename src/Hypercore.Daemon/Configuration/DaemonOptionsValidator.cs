using Microsoft.Extensions.Options;

namespace Hypercore.Daemon.Configuration;

/// <summary>
/// Checks every daemon setting at start (ValidateOnStart); a failure stops the daemon with exit code 2 and a
/// message that names the setting as it is spelled on the command line and in the TOML file.
/// The state directory is created if missing and must be writable.
/// </summary>
internal sealed class DaemonOptionsValidator : IValidateOptions<DaemonOptions>
{
    public static readonly string[] Accelerators = ["auto", "kvm", "tcg"];
    public static readonly string[] LogFormats = ["text", "json"];

    private readonly IReadOnlyList<string> _providers;

    /// <param name="providers">
    /// Names of the drivers the daemon composes. Names, not driver instances: building a driver reads its own
    /// options, and a failure there would hide this validator's clearer messages.
    /// </param>
    public DaemonOptionsValidator(IEnumerable<string> providers) => _providers = providers.Order(StringComparer.Ordinal).ToList();

    public ValidateOptionsResult Validate(string? name, DaemonOptions o)
    {
        var errors = new List<string>();
        var grpc = ListenEndpoint.Parse(o.GrpcEndpoint, out var grpcError);
        var http = ListenEndpoint.Parse(o.HttpEndpoint, out var httpError);
        if (grpc is null)
        {
            errors.Add($"{DaemonSettings.GrpcEndpoint.Name}: {grpcError}");
        }

        if (http is null)
        {
            errors.Add($"{DaemonSettings.HttpEndpoint.Name}: {httpError}");
        }

        if (grpc is not null && http is not null && grpc.Overlaps(http))
        {
            errors.Add($"{DaemonSettings.HttpEndpoint.Name}: {o.HttpEndpoint} collides with {DaemonSettings.GrpcEndpoint.Name} {o.GrpcEndpoint}; " +
                "HTTP/1.1 and HTTP/2 cannot share a cleartext port, use two ports");
        }

        var providers = _providers;
        if (!providers.Contains(o.DefaultProvider, StringComparer.OrdinalIgnoreCase))
        {
            errors.Add($"{DaemonSettings.DefaultProvider.Name}: \"{o.DefaultProvider}\" is not a provider on this node; known providers: " +
                (providers.Count == 0 ? "none" : string.Join(", ", providers)));
        }

        if (string.IsNullOrWhiteSpace(o.QemuBinary))
        {
            errors.Add($"{DaemonSettings.QemuBinary.Name}: must not be empty");
        }

        if (!Accelerators.Contains(o.QemuAccelerator))
        {
            errors.Add($"{DaemonSettings.QemuAccelerator.Name}: \"{o.QemuAccelerator}\" is not one of {string.Join(", ", Accelerators)}");
        }

        if (string.IsNullOrWhiteSpace(o.NodeName) || o.NodeName.Any(char.IsWhiteSpace) || o.NodeName.Length > 253)
        {
            errors.Add($"{DaemonSettings.NodeName.Name}: \"{o.NodeName}\" must be 1-253 characters without spaces");
        }

        if (!TryParseLogLevel(o.LogLevel, out _))
        {
            errors.Add($"{DaemonSettings.LogLevel.Name}: \"{o.LogLevel}\" is not one of Trace, Debug, Information, Warning, Error, Critical, None");
        }

        if (!LogFormats.Contains(o.LogFormat))
        {
            errors.Add($"{DaemonSettings.LogFormat.Name}: \"{o.LogFormat}\" is not one of {string.Join(", ", LogFormats)}");
        }

        if (o.OtlpEndpoint.Length > 0 && (!Uri.TryCreate(o.OtlpEndpoint, UriKind.Absolute, out var otlp) || otlp.Scheme is not ("http" or "https")))
        {
            errors.Add($"{DaemonSettings.OtlpEndpoint.Name}: \"{o.OtlpEndpoint}\" is not an http(s)://host:port address");
        }

        if (CheckStateDirectory(o.StateDirectory) is { } stateError)
        {
            errors.Add($"{DaemonSettings.StateDirectory.Name}: {stateError}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    public static bool TryParseLogLevel(string value, out Microsoft.Extensions.Logging.LogLevel level) =>
        Enum.TryParse(value, ignoreCase: true, out level) && !int.TryParse(value, out _) && Enum.IsDefined(level);

    /// <summary>Creates the directory when missing and proves it writable; returns the problem, or null.</summary>
    private static string? CheckStateDirectory(string dir)
    {
        if (string.IsNullOrWhiteSpace(dir) || !Path.IsPathFullyQualified(dir))
        {
            return $"\"{dir}\" must be an absolute path";
        }

        var probe = Path.Combine(dir, $".write-probe-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(probe, "");
            File.Delete(probe);
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"{dir} is not writable: {ex.Message}";
        }
    }
}

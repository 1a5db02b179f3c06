using System.Text.RegularExpressions;
using Hypercore.MicroVms;
using Hypercore.Store.Kubernetes;
using Microsoft.Extensions.Options;

namespace Hypercore.Daemon.Configuration;

/// <summary>
/// Checks every daemon setting at start (ValidateOnStart); a failure stops the daemon with exit code 2 and a
/// message that names the setting as it is spelled on the command line and in the TOML file.
/// The state directory is created if missing and must be writable; with the kubernetes store the kubeconfig must load.
/// </summary>
internal sealed partial class DaemonOptionsValidator : IValidateOptions<DaemonOptions>
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

        CheckStore(o, errors);

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    /// <summary>
    /// The store and, for kubernetes, what the store needs to reach the API server. The kubeconfig is loaded here (not
    /// first when the store is built) so that a missing or unreadable one is a bad setting, not a crash at start.
    /// </summary>
    private static void CheckStore(DaemonOptions o, List<string> errors)
    {
        if (!StoreKinds.All.Contains(o.Store))
        {
            errors.Add($"{DaemonSettings.Store.Name}: \"{o.Store}\" is not one of {string.Join(", ", StoreKinds.All)}");
            return;
        }

        if (o.Store != StoreKinds.Kubernetes)
        {
            foreach (var (setting, value) in new[] { (DaemonSettings.Kubeconfig, o.Kubeconfig), (DaemonSettings.KubeNamespace, o.KubeNamespace) })
            {
                if (value.Length > 0)
                {
                    errors.Add($"{setting.Name}: is only used with {DaemonSettings.Store.Name} = {StoreKinds.Kubernetes} (the store is {o.Store})");
                }
            }

            return;
        }

        if (o.KubeNamespace.Length > 0 && !MicroVmSpecValidator.IsName(o.KubeNamespace))
        {
            errors.Add($"{DaemonSettings.KubeNamespace.Name}: \"{o.KubeNamespace}\" is not a namespace name (lower-case letters, digits and '-', at most 63)");
        }

        if (!string.IsNullOrWhiteSpace(o.NodeName) && (o.NodeName.Length > 63 || !LabelValue().IsMatch(o.NodeName)))
        {
            errors.Add($"{DaemonSettings.NodeName.Name}: \"{o.NodeName}\" must be a label value with {DaemonSettings.Store.Name} = {StoreKinds.Kubernetes} " +
                "(at most 63 letters, digits, '-', '_', '.'): MicroVMs are assigned to nodes by the label hypercore.vistara.dev/node");
        }

        if (o.Kubeconfig.Length > 0 && !File.Exists(o.Kubeconfig))
        {
            errors.Add($"{DaemonSettings.Kubeconfig.Name}: {o.Kubeconfig} does not exist");
            return;
        }

        try
        {
            KubernetesConfig.Build(new KubernetesStoreOptions { Kubeconfig = o.Kubeconfig });
        }
        catch (InvalidOperationException) when (o.Kubeconfig.Length == 0)
        {
            errors.Add($"{DaemonSettings.Kubeconfig.Name}: not set, not running in a pod, and neither $KUBECONFIG nor ~/.kube/config names a file; " +
                $"pass {DaemonSettings.Kubeconfig.Flag} PATH");
        }
        catch (Exception ex)
        {
            errors.Add($"{DaemonSettings.Kubeconfig.Name}: {(o.Kubeconfig.Length > 0 ? o.Kubeconfig + ": " : "")}{ex.Message}");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\\z")]
    private static partial Regex LabelValue();

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

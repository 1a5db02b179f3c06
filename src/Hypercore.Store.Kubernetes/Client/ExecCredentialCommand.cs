using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace Hypercore.Store.Kubernetes.Client;

/// <summary>
/// A kubeconfig user's exec credential plugin (client.authentication.k8s.io ExecCredential, as kubectl runs it):
/// the command prints an ExecCredential whose status.token is the bearer token, valid until
/// status.expirationTimestamp. Only tokens are taken; a plugin that answers with a client certificate is refused.
/// </summary>
public sealed class ExecCredentialCommand
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    public required string Command { get; init; }

    public IReadOnlyList<string> Args { get; init; } = [];

    public IReadOnlyDictionary<string, string> Env { get; init; } = new Dictionary<string, string>();

    public string ApiVersion { get; init; } = "client.authentication.k8s.io/v1";

    internal static ExecCredentialCommand From(YamlMappingNode exec, string user, string dir)
    {
        var command = KubernetesApiConfig.Scalar(exec, "command");
        if (string.IsNullOrEmpty(command))
        {
            throw new KubeconfigException($"user '{user}': exec has no command");
        }

        // kubectl: a command with a path separator is relative to the kubeconfig's directory; a bare name is looked up in PATH.
        if (command.Contains('/', StringComparison.Ordinal))
        {
            command = KubernetesApiConfig.Resolve(command, dir);
        }

        var args = exec.Children.TryGetValue(new YamlScalarNode("args"), out var a) && a is YamlSequenceNode seq
            ? seq.OfType<YamlScalarNode>().Select(s => s.Value ?? "").ToList()
            : [];
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        if (exec.Children.TryGetValue(new YamlScalarNode("env"), out var e) && e is YamlSequenceNode envs)
        {
            foreach (var entry in envs.OfType<YamlMappingNode>())
            {
                if (KubernetesApiConfig.Scalar(entry, "name") is { Length: > 0 } name)
                {
                    env[name] = KubernetesApiConfig.Scalar(entry, "value") ?? "";
                }
            }
        }

        return new ExecCredentialCommand
        {
            Command = command,
            Args = args,
            Env = env,
            ApiVersion = KubernetesApiConfig.Scalar(exec, "apiVersion") is { Length: > 0 } v ? v : "client.authentication.k8s.io/v1",
        };
    }

    /// <summary>Runs the plugin; its token and when it expires (null: no expiry given).</summary>
    public async Task<(string Token, DateTimeOffset? Expires)> RunAsync(CancellationToken ct)
    {
        var psi = new ProcessStartInfo(Command)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in Args)
        {
            psi.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in Env)
        {
            psi.Environment[name] = value;
        }

        psi.Environment["KUBERNETES_EXEC_INFO"] = new JsonObject
        {
            ["apiVersion"] = ApiVersion,
            ["kind"] = "ExecCredential",
            ["spec"] = new JsonObject { ["interactive"] = false },
        }.ToJsonString();

        using var process = Process.Start(psi) ?? throw new HttpRequestException($"exec credential plugin {Command} did not start");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Timeout);
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        if (process.ExitCode != 0)
        {
            throw new HttpRequestException($"exec credential plugin {Command} exited with {process.ExitCode}: {(await stderr).Trim()}");
        }

        var status = (JsonNode.Parse(await stdout) as JsonObject)?["status"] as JsonObject;
        var token = (string?)status?["token"];
        if (string.IsNullOrEmpty(token))
        {
            throw new HttpRequestException($"exec credential plugin {Command} returned no status.token (client certificates from a plugin are not supported)");
        }

        DateTimeOffset? expires = (string?)status!["expirationTimestamp"] is { Length: > 0 } stamp &&
                                  DateTimeOffset.TryParse(stamp, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at)
            ? at
            : null;
        return (token, expires);
    }
}

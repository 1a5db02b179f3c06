using System.CommandLine;
using Hypercore.Daemon.Configuration;
using Hypercore.Daemon.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Daemon.Cli;

/// <summary>
/// <c>vistarad run [--config file.toml] [--grpc-endpoint …] …</c>. Settings come from the TOML file, then the
/// flags (flags win). A bad flag, file or setting exits with code 2 and a message naming the setting.
/// </summary>
public static class DaemonCli
{
    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken stop = default) =>
        RunAsync(args, stdout, stderr, alterServices: null, stop);

    /// <param name="alterServices">
    /// Changes the daemon's composition before it is built; only the benchmark node passes one (bench/Hypercore.BenchNode:
    /// its no-op driver in place of the hypervisor drivers). vistarad passes none.
    /// </param>
    internal static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, Action<IServiceCollection>? alterServices, CancellationToken stop)
    {
        var config = new Option<string?>("--config") { Description = "TOML settings file (keys named like the flags)", HelpName = "file.toml" };
        var flags = DaemonSettings.All.Where(s => !s.IsSwitch).ToDictionary(
            s => s,
            s => new Option<string?>(s.Flag) { Description = s.Description, HelpName = s.HelpName });
        var switches = DaemonSettings.All.Where(s => s.IsSwitch).ToDictionary(s => s, s => new Option<bool>(s.Flag) { Description = s.Description });

        var run = new Command("run", "Run the node daemon: store, reconciler, gRPC and HTTP/JSON API.");
        run.Options.Add(config);
        foreach (var option in flags.Values)
        {
            run.Options.Add(option);
        }

        foreach (var option in switches.Values)
        {
            run.Options.Add(option);
        }

        run.SetAction(async (parse, ct) =>
        {
            var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            try
            {
                if (parse.GetValue(config) is { } file)
                {
                    foreach (var (key, value) in TomlSettingsFile.Load(file))
                    {
                        settings[key] = value;
                    }
                }
            }
            catch (SettingsException ex)
            {
                await stderr.WriteLineAsync("vistarad: " + ex.Message);
                return DaemonHost.ExitBadSettings;
            }

            foreach (var (setting, option) in flags)
            {
                if (parse.GetResult(option) is not null && parse.GetValue(option) is { } value)
                {
                    settings[setting.ConfigKey] = value;
                }
            }

            foreach (var (setting, option) in switches)
            {
                if (parse.GetValue(option))
                {
                    settings[setting.ConfigKey] = "true";
                }
            }

            using var linked = CancellationTokenSource.CreateLinkedTokenSource(stop, ct);
            return await DaemonHost.RunAsync(settings, stdout, stderr, alterServices, linked.Token);
        });

        var root = new RootCommand("vistarad: the Hypercore node daemon (microVM desired state, reconciler, gRPC and HTTP/JSON API).");
        root.Subcommands.Add(run);

        var result = root.Parse(args);
        if (result.Errors.Count > 0)
        {
            foreach (var error in result.Errors)
            {
                await stderr.WriteLineAsync("vistarad: " + error.Message);
            }

            await stderr.WriteLineAsync("usage: vistarad run [--config file.toml] [--grpc-endpoint host:port] [--http-endpoint host:port] " +
                "[--state-dir dir] [--default-provider name] [--qemu-bin path] [--qemu-accel auto|kvm|tcg] [--node-name name] " +
                "[--log-level level] [--log-format text|json] [--store sqlite|kubernetes] [--kubeconfig path] [--kube-namespace ns] " +
                "[--firecracker-bin path] [--jailer-bin path --jailer-uid uid --jailer-gid gid] " +
                "[--cloud-hypervisor-bin path] [--ops-bin path [--ops-home dir]] [--unikernel-qemu-bin path] [--otlp-endpoint url] " +
                "[--reconcile-workers n] [--inspect-timeout duration] [--unresponsive-after duration] [--resync-interval duration] [--relist-interval duration] " +
                "[--socket path|none] [--socket-group group] [--tls-cert file --tls-key file] [--tls-client-ca file] [--token-file file] " +
                "[--insecure] [--reflection true|false] [--allowed-hosts names] [--max-request-body bytes] " +
                "[--console-log-max-bytes bytes] [--console-full-scan-interval duration] [--kvm-device path]");
            return DaemonHost.ExitBadSettings;
        }

        // The generic host handles SIGTERM/SIGINT itself (graceful stop); System.CommandLine must not race it.
        return await result.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, Output = stdout, Error = stderr }, stop);
    }
}

using System.Globalization;
using System.Runtime;
using System.Runtime.CompilerServices;
using Hypercore.Benchmarks.NoOp;
using Hypercore.Daemon.Cli;
using Hypercore.Daemon.Hosting;
using Hypercore.Drivers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Hypercore.BenchNode;

/// <summary>
/// <c>hypercore-bench-node run …</c>: vistarad's CLI, settings and composition (<see cref="DaemonHost"/>), with a
/// <see cref="NoOpDriver"/> under each registered provider name in place of the real hypervisor drivers. Everything
/// else (store, reconciler and its start steps, API, telemetry, Kestrel, the node lock, the ready line) is the daemon's.
/// No guest ever runs. It says so first, on stdout and stderr, and then its runtime (<see cref="RuntimePrefix"/>).
/// </summary>
public static class BenchNodeHost
{
    public const string Name = "hypercore-bench-node";

    /// <summary>The words it starts with, so that it cannot be taken for vistarad.</summary>
    public const string Banner = "benchmark node, no guest runs";

    /// <summary>Prefix of the stdout line with the runtime it runs under, "key=value" pairs (the runner compares them with vistarad's).</summary>
    public const string RuntimePrefix = Name + " runtime:";

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken stop = default)
    {
        var banner = $"{Name}: {Banner} (not vistarad: the daemon's composition with a no-op driver in place of every hypervisor driver; {BuildKind})";
        await stderr.WriteLineAsync(banner);
        await stdout.WriteLineAsync(banner);
        await stdout.WriteLineAsync(RuntimePrefix + string.Concat(Runtime().Select(kv => string.Create(CultureInfo.InvariantCulture, $" {kv.Key}={kv.Value}"))));
        await stdout.FlushAsync(stop);
        if (Refusal(args) is { } refusal)
        {
            await stderr.WriteLineAsync($"{Name}: {refusal}");
            return DaemonHost.ExitBadSettings;
        }

        Claim(StateDir(args)!);
        return await DaemonCli.RunAsync(args, stdout, stderr, UseNoOpDriver, stop);
    }

    /// <summary>The file that marks a state directory as a benchmark node's own.</summary>
    public const string Marker = "hypercore-bench-node.state";

    /// <summary>
    /// Why this node will not run with <paramref name="args"/>, or null. Its no-op driver sees no VM as running, so on a
    /// real node's state it would "restart" every VM in the records and write made-up status over them: it runs only on
    /// a state directory of its own (given with --state-dir, no database yet or one it made, marked with <see cref="Marker"/>),
    /// with the SQLite store, and without a settings file that could point it elsewhere.
    /// </summary>
    internal static string? Refusal(IReadOnlyList<string> args)
    {
        for (var i = 0; i < args.Count; i++)
        {
            var (flag, value) = Flag(args, i);
            switch (flag)
            {
                case "--config": return "no --config: a benchmark node takes its settings as flags only";
                case "--store" when value != "sqlite": return "only the SQLite store (--store sqlite): a benchmark node never joins a cluster";
            }
        }

        if (StateDir(args) is not { } stateDir)
        {
            return "--state-dir is required: a benchmark node runs only on a state directory of its own, never a node's (default /var/lib/hypercore)";
        }

        if (File.Exists(Path.Combine(stateDir, "hypercore.db")) && !File.Exists(Path.Combine(stateDir, Marker)))
        {
            return $"{stateDir} holds a database this benchmark node did not make (no {Marker}): it runs only on a state directory of its own";
        }

        return null;
    }

    /// <summary>
    /// Marks <paramref name="stateDir"/> as this node's own (made if missing), once <see cref="Refusal"/> has let it run
    /// there: the check itself writes nothing.
    /// </summary>
    internal static void Claim(string stateDir)
    {
        Directory.CreateDirectory(stateDir);
        File.WriteAllText(Path.Combine(stateDir, Marker), "made by hypercore-bench-node (benchmark only, no guest runs); vistarad must not use this state directory\n");
    }

    /// <summary>The --state-dir given (as "--state-dir DIR" or "--state-dir=DIR"; the last one counts), or null.</summary>
    internal static string? StateDir(IReadOnlyList<string> args)
    {
        string? stateDir = null;
        for (var i = 0; i < args.Count; i++)
        {
            if (Flag(args, i) is ("--state-dir", var value))
            {
                stateDir = value;
            }
        }

        return string.IsNullOrEmpty(stateDir) ? null : stateDir;
    }

    private static (string Flag, string? Value) Flag(IReadOnlyList<string> args, int i) =>
        args[i].Split('=', 2) is [var f, var v] ? (f, v) : (args[i], i + 1 < args.Count ? args[i + 1] : null);

    /// <summary>"Native AOT" or "JIT" (no dynamic code: the native binary).</summary>
    public static string BuildKind => RuntimeFeature.IsDynamicCodeSupported ? "JIT" : "Native AOT";

    /// <summary>
    /// The daemon's composition changed only in its drivers: the real ones (every <see cref="IHypervisorDriver"/>
    /// registration) out, a <see cref="NoOpDriver"/> per registered provider name in, so provider names, the default
    /// provider and the settings' validation stay the daemon's.
    /// </summary>
    public static void UseNoOpDriver(IServiceCollection services)
    {
        var providers = services.RegisteredProviders();
        services.RemoveAll<IHypervisorDriver>();
        foreach (var provider in providers)
        {
            services.AddSingleton<IHypervisorDriver>(new NoOpDriver(provider));
        }
    }

    /// <summary>The services of the daemon's composition for <paramref name="settings"/>: vistarad's, or this node's (tests compare them).</summary>
    internal static IServiceCollection Compose(IReadOnlyDictionary<string, string?> settings, bool noOpDriver)
    {
        var (builder, _) = DaemonHost.Compose(settings, new BoundEndpoints());
        if (noOpDriver)
        {
            UseNoOpDriver(builder.Services);
        }

        return builder.Services;
    }

    /// <summary>
    /// What this process runs under, in the keys of the runner's DaemonRuntime.Report: the collector's own view
    /// (background GC, server GC, gen0 budget), the thread pool's spin limit, and whether it is the native build.
    /// </summary>
    public static Dictionary<string, double> Runtime() => new()
    {
        ["runtime_aot"] = RuntimeFeature.IsDynamicCodeSupported ? 0 : 1,
        ["runtime_gc_concurrent"] = GCSettings.LatencyMode == GCLatencyMode.Batch ? 0 : 1,
        ["runtime_gc_server"] = GCSettings.IsServerGC ? 1 : 0,
        ["runtime_gen0_budget"] = GC.GetConfigurationVariables().TryGetValue("GCGen0MaxBudget", out var budget) ? Convert.ToDouble(budget, CultureInfo.InvariantCulture) : -1,
        ["runtime_spin_limit"] = AppContext.GetData("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit") is { } spin
            && double.TryParse(Convert.ToString(spin, CultureInfo.InvariantCulture), NumberStyles.Float, CultureInfo.InvariantCulture, out var s) ? s : -1,
    };
}

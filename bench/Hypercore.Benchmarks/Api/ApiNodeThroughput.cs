using System.Globalization;
using Hypercore.Benchmarks.Processes;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;

namespace Hypercore.Benchmarks.Api;

/// <summary>
/// Issue 15 goal 2's Running load in a process of its own: the same load generator (a process of its own, N clients,
/// empty-call baseline then durable Creates that ask for a Running VM) against hypercore-bench-node (bench/Hypercore.BenchNode,
/// the binary given with --bench-node: vistarad's composition and runtime settings with the benchmark's no-op driver,
/// published Native AOT by bench/run.sh), its CPU read from /proc/&lt;pid&gt;/stat over the window, as
/// <see cref="ApiDaemonThroughput"/> does for vistarad under the Stopped load. Each Create is stored claimed and
/// Provisioning in its own write (issue 15, claim14), runs the start steps (admission) and the driver's Start, and is
/// written Running: two durable writes.
/// </summary>
public static class ApiNodeThroughput
{
    public const string ChildKind = "api-node";
    public const string State = "Running";

    public static async Task<List<ResultRow>> RunAsync(BenchContext ctx, int clients)
    {
        var seconds = ctx.Options.ApiDuration.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
        BenchContext.Log($"api: {clients} client(s) against the benchmark node ({ctx.Options.BenchNodePath}), Creates with state {State}");
        var runs = await ChildRounds.RunAsync(ctx.Options.ApiRounds,
            _ => ChildRun.RunAsync(ctx, ChildKind, clients, TimeSpan.FromMinutes(10), "--bench-node", ctx.Options.BenchNodePath!, "--qemu-bin", ctx.Options.QemuBinary),
            "benchmark node");
        var r = ChildRounds.Median(runs);
        var build = r.GetValueOrDefault("node_aot") == 1 ? "AOT" : "JIT";
        var where = $"{build} benchmark node, Running load";
        var runtime = r.GetValueOrDefault("node_runtime_differences") == 0
            ? "vistarad's runtime settings"
            : $"{r["node_runtime_differences"]:0} runtime setting(s) NOT vistarad's (the run's log says which)";
        var ratio = BaselineBracket.Ratio(r);
        var method = $"{clients} gRPC client(s) × sequential Create (state {State}: Create + claim + Provisioning in one write, admission, the no-op driver's start, Running) for {seconds} s after a warm-up, " +
            $"{r["count"]:0} creates, {r["errors"]:0} errors, against hypercore-bench-node ({(build == "AOT" ? "Native AOT" : "JIT build: no Native AOT toolchain, or the smoke run")}, {runtime}; " +
            "vistarad's own composition with a no-op driver in place of the hypervisors: not vistarad, no guest runs); " +
            $"{BaselineBracket.Text(r, "the same node")}; " +
            $"Create p50 {Fmt.Number(r["p50_ms"])} ms, p99 {Fmt.Number(r["p99_ms"])} ms; server {Fmt.Number(r["cpu_us_per"])} µs CPU per Create in the window, " +
            $"{Fmt.Number(r["cpu_us_per_drained"])} µs until every Create is Running ({r.GetValueOrDefault("records_in_state"):0} Running, {Fmt.Number(r["drain_s"])} s after the window); " +
            $"empty call {Fmt.Number(r["base_cpu_us_per"])} µs; {Fmt.Number(r.GetValueOrDefault("daemon_alloc_kb_per"))} KB allocated per Create" +
            DaemonGcMetrics.WindowText(r) + LoadGenerator.ClientText(r) + ChildRounds.Text(runs);
        return
        [
            new ResultRow(ApiThroughput.Name, $"Creates ÷ empty-call baseline, {clients} client(s), {where}", ratio, "×", method) { Reference = BaselineBracket.Reference(r) },
            new ResultRow(ApiThroughput.Name, $"Create latency p99, {clients} client(s), {where}", r["p99_ms"], "ms", "per call, client side"),
            new ResultRow(ApiThroughput.Name, $"server CPU per Create, {clients} client(s), {where}", r["cpu_us_per"], "µs",
                "utime + stime of the node process over the measured window ÷ Creates (the load generator is another process)"),
        ];
    }

    /// <summary>The child: a fresh benchmark node on its own state directory, the baseline, then the Running Creates.</summary>
    public static Task<Dictionary<string, double>> RunChildAsync(BenchOptions options, int clients)
    {
        var node = options.BenchNodePath ?? throw new ArgumentException($"{ChildKind} needs --bench-node (the hypercore-bench-node binary)");
        var config = DaemonRuntime.ConfigPath(typeof(ApiNodeThroughput).Assembly.Location);
        // The daemon's admission runs (start step 100) against a capacity no run fills, as in the in-process node: the
        // node's own (this machine's CPUs and memory) admits a few dozen VMs, and the rest would wait Pending. 100,000 CPUs (the
        // setting's largest) × the default overcommit of 16 admit 1.6 million one-vCPU VMs.
        string[] capacity = ["--capacity-cpus", "100000", "--capacity-memory-mb", "1073741824"];
        return ApiDaemonThroughput.RunProcessChildAsync(options, clients, node, "node", State, capacity, (process, result) =>
        {
            var runtime = NodeRuntime(process.StdoutLines)
                ?? throw new InvalidOperationException($"{node} did not report its runtime: not a benchmark node? stdout: {string.Join(" | ", process.StdoutLines)}");
            var differences = RuntimeDifferences(runtime, DaemonRuntime.Properties(config));
            foreach (var difference in differences)
            {
                Console.Error.WriteLine($"{ChildKind}: WARNING: the benchmark node does not run under vistarad's runtime settings: {difference}");
            }

            foreach (var (key, value) in runtime)
            {
                result["node_" + key] = value;
            }

            result["node_aot"] = runtime.GetValueOrDefault("runtime_aot");
            result["node_runtime_differences"] = differences.Count;
        });
    }

    /// <summary>The node's "hypercore-bench-node runtime: key=value …" line, or null when there is none.</summary>
    internal static Dictionary<string, double>? NodeRuntime(IEnumerable<string> stdout)
    {
        const string prefix = "hypercore-bench-node runtime:";
        var line = stdout.FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line?[prefix.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(pair => pair.Split('=', 2))
            .ToDictionary(kv => kv[0], kv => double.Parse(kv[1], NumberStyles.Float, CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Where the node's own view of its runtime differs from vistarad's settings (its runtimeconfig.json, whose values the
    /// Native AOT build carries in the binary: src/Hypercore.Daemon/vistarad.runtime.props).
    /// </summary>
    internal static List<string> RuntimeDifferences(IReadOnlyDictionary<string, double> node, IReadOnlyDictionary<string, double> daemon)
    {
        var differences = new List<string>();
        void Expect(string key, double value, string what)
        {
            if (node.GetValueOrDefault(key, -1) is var actual && !actual.Equals(value))
            {
                differences.Add($"{what}: {actual.ToString(CultureInfo.InvariantCulture)} where vistarad has {value.ToString(CultureInfo.InvariantCulture)}");
            }
        }

        Expect("runtime_gc_concurrent", daemon.GetValueOrDefault("System.GC.Concurrent", 1), "background GC");
        Expect("runtime_gc_server", daemon.GetValueOrDefault("System.GC.Server", 0), "server GC");
        if (daemon.TryGetValue("System.GC.Gen0MaxBudget", out var budget))
        {
            Expect("runtime_gen0_budget", budget, "gen0 budget");
        }

        if (daemon.TryGetValue("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit", out var spin))
        {
            Expect("runtime_spin_limit", spin, "thread-pool spin limit");
        }

        return differences;
    }
}

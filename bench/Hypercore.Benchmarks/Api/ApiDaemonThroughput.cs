using System.Diagnostics;
using System.Globalization;
using Hypercore.Benchmarks.Processes;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;

namespace Hypercore.Benchmarks.Api;

/// <summary>
/// Issue 15 goal 2 against the shipped daemon: the same load generator (a process of its own, N clients, empty-call
/// baseline then durable Creates) against a separately started vistarad (the binary given with --daemon: the Native
/// AOT one bench/run.sh publishes), its CPU read from /proc/&lt;pid&gt;/stat over the window — the daemon process only.
/// </summary>
/// <remarks>
/// The daemon has no no-op driver (and gets none for a benchmark), and its QEMU driver would start a real QEMU per
/// Create. So the Creates ask for <c>state: "Stopped"</c>: one durable write per Create since issue 15's claim14 (the
/// Create, stored claimed and Stopped by the reconciler's own decision; its first pass writes nothing), and the real QEMU
/// driver is asked only to inspect (no VM directory: NotFound). The admission step and the driver's
/// start do not run. <see cref="InProcessChildKind"/> is the in-process node with the same Stopped load, so the
/// daemon and the in-process runtime can be compared on the same work.
/// </remarks>
public static class ApiDaemonThroughput
{
    public const string ChildKind = "api-daemon";
    public const string InProcessChildKind = "api-stopped";
    public const string State = "Stopped";

    public static async Task<List<ResultRow>> RunAsync(BenchContext ctx, int clients)
    {
        var seconds = ctx.Options.ApiDuration.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
        BenchContext.Log($"api: {clients} client(s) against the vistarad process ({ctx.Options.DaemonPath}), Creates with state {State}; then the in-process node with the same load");
        var daemonRuns = await ChildRounds.RunAsync(ctx.Options.ApiRounds,
            _ => ChildRun.RunAsync(ctx, ChildKind, clients, TimeSpan.FromMinutes(10), "--daemon", ctx.Options.DaemonPath!, "--qemu-bin", ctx.Options.QemuBinary),
            "vistarad");
        var p = await ChildRun.RunAsync(ctx, InProcessChildKind, clients, TimeSpan.FromMinutes(10));
        var rows = new List<ResultRow>();
        foreach (var (r, where, rounds) in new[] { (ChildRounds.Median(daemonRuns), "vistarad process", ChildRounds.Text(daemonRuns)), (p, "in-process node", "") })
        {
            var ratio = BaselineBracket.Ratio(r);
            var method = $"{clients} gRPC client(s) × sequential Create (state {State}: stored claimed and Stopped in the Create's write, the reconciler's pass inspects and writes nothing, no driver start) for {seconds} s after a warm-up, " +
                $"{r["count"]:0} creates, {r["errors"]:0} errors, against the {where}; {BaselineBracket.Text(r, "the same server")}; " +
                $"Create p50 {Fmt.Number(r["p50_ms"])} ms, p99 {Fmt.Number(r["p99_ms"])} ms; server {Fmt.Number(r["cpu_us_per"])} µs CPU per Create in the window, " +
                $"{Fmt.Number(r["cpu_us_per_drained"])} µs until every Create is reconciled; empty call {Fmt.Number(r["base_cpu_us_per"])} µs" +
                DaemonGcMetrics.WindowText(r) + LoadGenerator.ClientText(r) + rounds;
            rows.Add(new ResultRow(ApiThroughput.Name, $"Creates ÷ empty-call baseline, {clients} client(s), {where}", ratio, "×", method) { Reference = BaselineBracket.Reference(r) });
            rows.Add(new ResultRow(ApiThroughput.Name, $"Create latency p99, {clients} client(s), {where}", r["p99_ms"], "ms", "per call, client side"));
            rows.Add(new ResultRow(ApiThroughput.Name, $"server CPU per Create, {clients} client(s), {where}", r["cpu_us_per"], "µs",
                "utime + stime of the server process over the measured window ÷ Creates (the load generator is another process)"));
        }

        return rows;
    }

    /// <summary>The child: a fresh vistarad on its own state directory, the baseline, then the Creates.</summary>
    public static Task<Dictionary<string, double>> RunChildAsync(BenchOptions options, int clients) =>
        RunProcessChildAsync(
            options, clients, options.DaemonPath ?? throw new ArgumentException($"{ChildKind} needs --daemon (the vistarad binary)"), "daemon", State, [], started: null);

    /// <summary>
    /// A fresh server process (vistarad, or the benchmark node: <see cref="ApiNodeThroughput"/>) on its own state directory
    /// under <c>api-N-<paramref name="name"/></c>, the baseline, then Creates asking for <paramref name="vmState"/>; then
    /// the baseline again on another fresh server of the same binary (<see cref="BaselineBracket"/>).
    /// </summary>
    /// <param name="serverArgs">Flags of the server's own, before those of HYPERCORE_BENCH_DAEMON_ARGS.</param>
    /// <param name="started">Called once the server is ready (the node's own report of its runtime).</param>
    internal static async Task<Dictionary<string, double>> RunProcessChildAsync(
        BenchOptions options, int clients, string daemonPath, string name, string vmState, string[] serverArgs, Action<DaemonProcess, Dictionary<string, double>>? started)
    {
        var dir = Directory.CreateDirectory(ChildRounds.FreshDirectory(options.WorkDirectory!, $"api-{clients}-{name}")).FullName;
        // HYPERCORE_BENCH_DAEMON_ARGS: more daemon flags for an A/B (e.g. "--autogroup-nice 0"), space-separated.
        string[] extra = [.. serverArgs, .. (Environment.GetEnvironmentVariable("HYPERCORE_BENCH_DAEMON_ARGS") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries)];
        var result = await RunCreatesAsync(options, clients, daemonPath, Path.Combine(dir, "state"), vmState, extra, started); // that server is stopped by now

        // The second baseline (BaselineBracket): a fresh server of the same binary and flags on an empty state directory.
        await using var fresh = DaemonProcess.Start(daemonPath, Path.Combine(dir, "state-after"), options.QemuBinary, extra);
        await fresh.WaitReadyAsync(TimeSpan.FromMinutes(2));
        await BaselineBracket.MeasureAfterAsync(result, options, fresh.GrpcAddress, clients, fresh.Pid);
        return result;
    }


    /// <summary>The first server: the baseline before the Creates, the Creates, the drain and what the server says of them.</summary>
    private static async Task<Dictionary<string, double>> RunCreatesAsync(
        BenchOptions options, int clients, string daemonPath, string state, string vmState, string[] extra, Action<DaemonProcess, Dictionary<string, double>>? started)
    {
        // The daemon takes kernels only from <state-dir>/images unless told otherwise (safe by default).
        var kernel = Path.Combine(Directory.CreateDirectory(Path.Combine(state, "images")).FullName, "vmlinuz");
        await File.WriteAllTextAsync(kernel, "kernel");
        await using var daemon = DaemonProcess.Start(daemonPath, state, options.QemuBinary, extra);
        if (Environment.GetEnvironmentVariable("HYPERCORE_BENCH_DAEMON_PID_FILE") is { Length: > 0 } pidFile)
        {
            await File.WriteAllTextAsync(pidFile, daemon.Pid.ToString(CultureInfo.InvariantCulture)); // for perf or a schedstat sampler
        }

        await daemon.WaitReadyAsync(TimeSpan.FromMinutes(2));
        var timeout = TimeSpan.FromMinutes(5) + 4 * options.ApiDuration;
        var result = new Dictionary<string, double>();
        started?.Invoke(daemon, result);
        var (health, healthCpu, healthWindow) = await LoadGenerator.DriveAsync(
            daemon.GrpcAddress, LoadGenerator.CallHealth, clients, options.ApiDuration, kernel: null, "health", timeout, serverPid: daemon.Pid);
        LoadGenerator.AddBaseline(result, health, healthCpu, healthWindow);
        result["base_ctxsw_per"] = health["count"] == 0 ? 0 : health["server_ctxsw"] / health["count"];

        var gcBefore = await DaemonGcMetrics.ReadAsync(daemon.HttpAddress); // issue 15 (survivors): the daemon's own GC counts
        var cpuBeforeWarmUp = ProcFs.CpuTime(daemon.Pid) ?? TimeSpan.Zero;
        var cpuAtStart = TimeSpan.Zero;
        // Issue 15 (gctail): the daemon's collections and pause in the measured window alone, which is where the p99 is
        // taken; the reading at its start runs while the Creates do (one /metrics scrape).
        Task<Dictionary<string, double>?>? gcAtWindowStart = null;
        var (r, cpu, window) = await LoadGenerator.DriveAsync(
            daemon.GrpcAddress, LoadGenerator.CallCreate, clients, options.ApiDuration, kernel, "c", timeout,
            () =>
            {
                cpuAtStart = ProcFs.CpuTime(daemon.Pid) ?? TimeSpan.Zero;
                gcAtWindowStart = DaemonGcMetrics.ReadAsync(daemon.HttpAddress);
            },
            serverPid: daemon.Pid, state: vmState);
        var gcAtWindowEnd = await DaemonGcMetrics.ReadAsync(daemon.HttpAddress);
        DaemonGcMetrics.ReportWindow(result, gcAtWindowStart is null ? null : await gcAtWindowStart, gcAtWindowEnd);
        foreach (var (key, value) in r)
        {
            result[key] = value;
        }

        var count = r["count"];
        result["cpu_us_per"] = count == 0 ? 0 : cpu.TotalMilliseconds * 1000 / count;
        result["cpu_cores"] = cpu.TotalSeconds / window.TotalSeconds;
        result["ctxsw_per"] = count == 0 ? 0 : r["server_ctxsw"] / count; // the daemon's threads' context switches per Create
        // The reconciler may fall behind: its work for the window's Creates goes on after it. With no informer to follow
        // from outside, the daemon counts as done once it has used under 15 % of a CPU for a second: with the ~15,000
        // Stopped records a run leaves, its periodic work alone takes 4–8 % (measured: 40–80 ms per second for 30 s
        // after the window), a busy reconciler most of a core. The CPU from the warm-up's start until then, ÷ every
        // Create made, is the whole cost of one (that background included).
        var drainStart = Stopwatch.GetTimestamp();
        var last = ProcFs.CpuTime(daemon.Pid) ?? TimeSpan.Zero;
        var idleAt = last;
        var all = count + r["warm_count"];
        if (vmState == State)
        {
            while (Stopwatch.GetElapsedTime(drainStart) < TimeSpan.FromMinutes(1))
            {
                await Task.Delay(1000);
                var now = ProcFs.CpuTime(daemon.Pid) ?? last;
                await Console.Error.WriteLineAsync($"api-daemon: {Stopwatch.GetElapsedTime(drainStart).TotalSeconds:0} s after the window, {(now - last).TotalMilliseconds:0} ms CPU in the last second");
                if (now - last < TimeSpan.FromMilliseconds(150))
                {
                    idleAt = last; // the second just measured was idle: the work ended before it
                    break;
                }

                last = now;
            }

            result["drain_s"] = Math.Max(0, Stopwatch.GetElapsedTime(drainStart).TotalSeconds - 1);
        }
        else
        {
            // Running VMs (the benchmark node: its no-op driver answers every inspect "running"), so the server is never
            // idle for long; done is when its own gauge (hypercore.microvms by phase) has every Create in the asked phase,
            // as the in-process row counts until every record is Running.
            var inPhase = 0.0;
            while (Stopwatch.GetElapsedTime(drainStart) < TimeSpan.FromMinutes(2))
            {
                inPhase = (await DaemonGcMetrics.ReadAsync(daemon.HttpAddress))?.GetValueOrDefault(DaemonGcMetrics.PhaseKey(vmState)) ?? 0;
                idleAt = ProcFs.CpuTime(daemon.Pid) ?? idleAt;
                if (inPhase >= all)
                {
                    break;
                }

                await Task.Delay(100); // a scrape costs the server CPU too: ten a second at most
            }

            result["drain_s"] = Stopwatch.GetElapsedTime(drainStart).TotalSeconds;
            result["records_in_state"] = inPhase;
        }

        result["cpu_us_per_drained"] = all == 0 ? 0 : (idleAt - cpuBeforeWarmUp).TotalMilliseconds * 1000 / all;
        result["cpu_us_per_drained_window"] = count == 0 ? 0 : (idleAt - cpuAtStart).TotalMilliseconds * 1000 / count;
        result["rss_mb"] = (daemon.RssBytes ?? 0) / 1048576.0;
        var gcAfter = await DaemonGcMetrics.ReadAsync(daemon.HttpAddress);
        DaemonGcMetrics.Report(result, gcBefore, gcAfter, all); // warm-up, window and drain
        if (gcAfter is not null)
        {
            result["heap_mb_after_gc"] = DaemonGcMetrics.HeapAfterLastCollection(gcAfter) / 1048576;
            result["heap_kb_per_record"] = all == 0 ? 0 : DaemonGcMetrics.HeapAfterLastCollection(gcAfter) / 1024 / all;
        }
        return result;
    }
}

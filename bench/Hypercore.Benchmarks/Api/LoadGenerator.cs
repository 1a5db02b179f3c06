using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Hypercore.Benchmarks.Processes;
using Hypercore.Benchmarks.Runner;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Benchmarks.Api;

/// <summary>
/// The API benchmark's clients, in a process of their own (this executable with the hidden first argument
/// <c>--load-generator</c>, or since issue 15's nineteenth pass by default the native one, <see cref="NativeLoadGenerator.NativeLoadGenerator"/>,
/// with the same protocol), so that their HTTP/2 and protobuf work is not counted as the server's CPU. N clients,
/// each on its own connection, each doing one call after another: a warm-up, then the line <see cref="MeasureLine"/>
/// on stdout (the server starts its CPU reading), the measured window, then one <c>RESULT {json}</c> line.
/// </summary>
public static class LoadGenerator
{
    public const string Flag = "--load-generator";
    public const string MeasureLine = "MEASURE";
    public const string CallCreate = "create";
    public const string CallHealth = "health";

    /// <summary>Only report the runtime the load generator runs under (<c>client_runtime_*</c>) and exit (tests).</summary>
    public const string RuntimeFlag = "--runtime";

    /// <summary>Usage: --load-generator --target URL --call create|health --clients N --seconds S [--kernel path] [--prefix id-prefix] [--state Running|Stopped|Paused]; or --load-generator --runtime.</summary>
    public static async Task<int> MainAsync(IReadOnlyList<string> args)
    {
        if (args.Contains(RuntimeFlag))
        {
            var runtime = new Dictionary<string, double>();
            ClientWindow.ReportRuntime(runtime);
            ChildRun.Report(runtime);
            return 0;
        }

        string? target = null, call = null, kernel = null, prefix = "lg", state = null;
        int clients = 0;
        double seconds = 0;
        for (var i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case Flag: break;
                case "--target": target = Value(); break;
                case "--call": call = Value(); break;
                case "--kernel": kernel = Value(); break;
                case "--prefix": prefix = Value(); break;
                case "--state": state = Value(); break;
                case "--clients": clients = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--seconds": seconds = double.Parse(Value(), CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"load generator: unknown argument {args[i]}");
            }
        }

        if (target is null || clients <= 0 || seconds <= 0 || call is not (CallCreate or CallHealth) || (call == CallCreate && kernel is null))
        {
            throw new ArgumentException("load generator: needs --target, --call create|health, --clients N > 0, --seconds S > 0 (and --kernel for create)");
        }

        var channels = Enumerable.Range(0, clients).Select(_ => GrpcChannel.ForAddress(target)).ToList();
        try
        {
            Func<int, int, Task> one = call == CallCreate ? CreateCall(channels, kernel!, prefix, state) : HealthCall(channels);
            // Up to 3 s of warm-up (issue 15): after 1 s the server was still in tiered compilation (21 % of its CPU
            // in the JIT during a 5 s run), which the daemon, long-running and ReadyToRun, is not.
            var (warm, _, _) = await RunAsync(clients, one, TimeSpan.FromSeconds(Math.Min(3, seconds)), "warm");
            // HYPERCORE_BENCH_LATENCY_TRACE=file (issue 15, gctail): every measured call's end time and latency, to line
            // slow calls up with the server's GC pauses or fsyncs traced by the clock the kernel's trace_clock "mono" uses.
            var traceFile = Environment.GetEnvironmentVariable("HYPERCORE_BENCH_LATENCY_TRACE") is { Length: > 0 } t ? $"{t}.{call}" : null;
            var ends = traceFile is null ? null : Enumerable.Range(0, clients).Select(_ => new List<long>(4096)).ToList();
            await Console.Out.WriteLineAsync(MeasureLine);
            await Console.Out.FlushAsync();
            var own = ClientWindow.Start();
            var (latencies, errors, elapsed) = await RunAsync(clients, one, TimeSpan.FromSeconds(seconds), "run", ends);
            var window = own.End();
            if (traceFile is not null)
            {
                await WriteTraceAsync(traceFile, latencies, ends!);
            }

            var all = latencies.SelectMany(l => l).Order().ToArray();
            var result = new Dictionary<string, double>
            {
                ["rate"] = all.Length / elapsed.TotalSeconds,
                ["count"] = all.Length,
                ["warm_count"] = warm.Sum(l => l.Count),
                ["errors"] = errors,
                ["seconds"] = elapsed.TotalSeconds,
                ["p50_ms"] = Percentile(all, 0.50),
                ["p99_ms"] = Percentile(all, 0.99),
            };
            window.Report(result, all.Length);
            ChildRun.Report(result);
            return 0;
        }
        finally
        {
            foreach (var channel in channels)
            {
                channel.Dispose();
            }
        }
    }

    /// <param name="state">The spec's desired state; null: the default (Running).</param>
    private static Func<int, int, Task> CreateCall(List<GrpcChannel> channels, string kernel, string prefix, string? state)
    {
        var clients = channels.Select(c => new VMService.VMServiceClient(c)).ToArray();
        return (c, i) => clients[c].CreateAsync(CreateRequest(string.Create(CultureInfo.InvariantCulture, $"{prefix}-{c}-{i}"), kernel, state)).ResponseAsync;
    }

    /// <summary>The Create both load generators send (the native one gets it serialized, with a placeholder id).</summary>
    /// <param name="state">The spec's desired state; null: the default (Running).</param>
    internal static CreateMicroVMRequest CreateRequest(string id, string kernel, string? state) => new()
    {
        Microvm = new MicroVMSpec
        {
            Id = id,
            Namespace = "bench",
            Vcpu = 1,
            MemoryInMb = 128,
            Kernel = new Kernel { Image = kernel },
            State = state ?? "",
        },
    };

    private static Func<int, int, Task> HealthCall(List<GrpcChannel> channels)
    {
        var clients = channels.Select(c => new Health.HealthClient(c)).ToArray();
        var request = new HealthCheckRequest();
        return async (c, _) =>
        {
            var reply = await clients[c].CheckAsync(request);
            if (reply.Status != HealthCheckResponse.Types.ServingStatus.Serving)
            {
                throw new RpcException(new Status(StatusCode.Unavailable, $"health: {reply.Status}"));
            }
        };
    }

    /// <summary>One line per call: client, end (CLOCK_MONOTONIC ns: Stopwatch's clock on Linux), latency (ns).</summary>
    private static async Task WriteTraceAsync(string path, List<List<long>> latencies, List<List<long>> ends)
    {
        var toNs = 1e9 / Stopwatch.Frequency;
        await using var w = new StreamWriter(path);
        for (var c = 0; c < latencies.Count; c++)
        {
            for (var i = 0; i < latencies[c].Count; i++)
            {
                await w.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{c} {(long)(ends[c][i] * toNs)} {(long)(latencies[c][i] * toNs)}"));
            }
        }
    }

    private static async Task<(List<List<long>> Latencies, int Errors, TimeSpan Elapsed)> RunAsync(
        int clients, Func<int, int, Task> call, TimeSpan duration, string phase, List<List<long>>? ends = null)
    {
        var started = Stopwatch.GetTimestamp();
        var stopAt = started + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var errors = 0;
        var latencies = Enumerable.Range(0, clients).Select(_ => new List<long>(4096)).ToList();
        // Ids must differ between the warm-up and the run: the phase goes into the call index.
        var offset = phase == "warm" ? 0 : 1 << 30;
        var tasks = Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            var mine = latencies[c];
            for (var i = 0; Stopwatch.GetTimestamp() < stopAt; i++)
            {
                var t0 = Stopwatch.GetTimestamp();
                try
                {
                    await call(c, offset + i);
                    var t1 = Stopwatch.GetTimestamp();
                    mine.Add(t1 - t0);
                    ends?[c].Add(t1);
                }
                catch (RpcException)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        })).ToList();
        await Task.WhenAll(tasks);
        return (latencies, errors, Stopwatch.GetElapsedTime(started));
    }

    /// <summary>
    /// The load generator's own cost and stalls in the measured window (issue 15, lg12), reported as <c>client_*</c>: its CPU
    /// and context switches, its collections and their pause (every client's calls in flight stall for a pause, and the
    /// client measures the latency, so a client pause is part of the measured tail), the bytes it allocated, the methods
    /// its JIT compiled in the window; and the runtime settings it ran under (<c>client_runtime_*</c>).
    /// </summary>
    private readonly record struct ClientWindow(TimeSpan Cpu, long? Switches, int Gen0, int Gen1, int Gen2, TimeSpan Pause, long Allocated, long JitMethods)
    {
        public static ClientWindow Start() => new(
            ProcFs.CpuTime(Environment.ProcessId) ?? TimeSpan.Zero, ProcFs.ContextSwitches(Environment.ProcessId),
            GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalPauseDuration(), GC.GetTotalAllocatedBytes(),
            System.Runtime.JitInfo.GetCompiledMethodCount());

        /// <summary>The differences from <see cref="Start"/> to now.</summary>
        public ClientWindow End()
        {
            var now = Start();
            return new(now.Cpu - Cpu, now.Switches - Switches, now.Gen0 - Gen0, now.Gen1 - Gen1, now.Gen2 - Gen2, now.Pause - Pause,
                now.Allocated - Allocated, now.JitMethods - JitMethods);
        }

        /// <summary>Adds the window's figures (a window from <see cref="End"/>) for <paramref name="calls"/> calls.</summary>
        public void Report(Dictionary<string, double> result, int calls)
        {
            double Per(double value) => calls == 0 ? 0 : value / calls;
            result["client_cpu_us_per"] = Per(Cpu.TotalMilliseconds * 1000);
            result["client_ctxsw_per"] = Switches is { } switches ? Per(switches) : -1;
            // GC.CollectionCount(n) counts every collection of generation n or older: each collection once here, as the
            // server's daemon_window_gen* (its meter) count them.
            result["client_gc"] = Gen0;
            result["client_gen0"] = Gen0 - Gen1;
            result["client_gen1"] = Gen1 - Gen2;
            result["client_gen2"] = Gen2;
            result["client_gc_pause_ms"] = Pause.TotalMilliseconds;
            result["client_gc_pause_ms_per_gc"] = Gen0 == 0 ? 0 : Pause.TotalMilliseconds / Gen0;
            result["client_alloc_kb_per"] = Per(Allocated / 1024.0);
            result["client_jit_methods"] = JitMethods;
            ReportRuntime(result);
        }

        /// <summary>The runtime settings this process runs under, as <c>client_runtime_*</c> (<see cref="DaemonRuntime.Report"/>).</summary>
        public static void ReportRuntime(Dictionary<string, double> result)
        {
            var runtime = new Dictionary<string, double>();
            DaemonRuntime.Report(runtime);
            foreach (var (key, value) in runtime.Where(kv => kv.Key.StartsWith("runtime_", StringComparison.Ordinal) && kv.Key is not ("runtime_jit_methods" or "runtime_jit_ms")))
            {
                result["client_" + key] = value;
            }
        }
    }

    /// <summary>
    /// The baseline's figures as <c>base_*</c> (the empty calls' run from <see cref="DriveAsync"/>: its client result, the
    /// server's CPU and the window): rate, count, errors, p50, p99, the server's CPU per call and cores busy, and the load
    /// generator's own figures (<c>client_*</c> as <c>base_client_*</c>, issue 15, lg12).
    /// </summary>
    /// <param name="prefix">"base_" for the baseline before the Creates, <see cref="BaselineBracket.AfterPrefix"/> for the one after them.</param>
    public static void AddBaseline(Dictionary<string, double> result, IReadOnlyDictionary<string, double> health, TimeSpan serverCpu, TimeSpan window, string prefix = "base_")
    {
        foreach (var key in (string[])["rate", "count", "errors", "p50_ms", "p99_ms"])
        {
            result[prefix + key] = health[key];
        }

        foreach (var (key, value) in health.Where(kv => kv.Key.StartsWith("client_", StringComparison.Ordinal)))
        {
            result[prefix + key] = value;
        }

        result[prefix + "cpu_us_per"] = health["count"] == 0 ? 0 : serverCpu.TotalMilliseconds * 1000 / health["count"];
        result[prefix + "cpu_cores"] = serverCpu.TotalSeconds / window.TotalSeconds;
    }

    /// <summary>
    /// "; load generator: …" for a row's method text: its CPU per call and its collections in the window (the native one: its CPU alone) (<c>client_*</c>;
    /// with <paramref name="prefix"/> "base_": under the baseline), or "" when the keys are missing.
    /// </summary>
    public static string ClientText(IReadOnlyDictionary<string, double> r, string prefix = "")
    {
        if (!r.TryGetValue(prefix + "client_cpu_us_per", out var cpu))
        {
            return "";
        }

        if (r.GetValueOrDefault(prefix + "client_native") == 1) // issue 15, lg19: no collector to report
        {
            return string.Create(CultureInfo.InvariantCulture, $"; load generator native (C, libnghttp2, one thread; not counted as the server's): {cpu:0} µs CPU per call");
        }

        return r.TryGetValue(prefix + "client_gc", out var collections) && r.TryGetValue(prefix + "client_gc_pause_ms", out var pause) &&
            r.TryGetValue(prefix + "client_gc_pause_ms_per_gc", out var per)
                ? string.Create(CultureInfo.InvariantCulture,
                    $"; load generator (not counted as the server's): {cpu:0} µs CPU per call, {collections:0} collections in the window, {pause:0} ms paused ({per:0.0} ms each)")
                : "";
    }

    private static double Percentile(long[] sortedTicks, double p) =>
        sortedTicks.Length == 0 ? double.NaN
            : sortedTicks[Math.Min(sortedTicks.Length - 1, (int)Math.Ceiling(p * sortedTicks.Length) - 1)] * 1000.0 / Stopwatch.Frequency;

    /// <summary>This one (the runner's executable with <see cref="Flag"/>) for a run: the clients' runtime settings (<see cref="ChildRun.SelfStartInfo"/>).</summary>
    private static ProcessStartInfo StartInfo(string target, string call, int clients, TimeSpan duration, string? kernel, string prefix, string? state)
    {
        var start = ChildRun.SelfStartInfo();
        foreach (var arg in (string[])[Flag, "--target", target, "--call", call, "--clients", clients.ToString(CultureInfo.InvariantCulture),
            "--seconds", duration.TotalSeconds.ToString(CultureInfo.InvariantCulture), "--prefix", prefix, .. kernel is null ? [] : (string[])["--kernel", kernel], .. state is null ? [] : (string[])["--state", state]])
        {
            start.ArgumentList.Add(arg);
        }

        return start;
    }

    /// <summary>
    /// The server side: starts the generator against <paramref name="target"/> and reads the server's CPU time
    /// (utime + stime of /proc/&lt;pid&gt;/stat: this process's, or <paramref name="serverPid"/>'s when the server is a
    /// separate daemon) when the generator's measured window starts and when it reports.
    /// </summary>
    public static async Task<(Dictionary<string, double> Client, TimeSpan ServerCpu, TimeSpan Window)> DriveAsync(
        string target, string call, int clients, TimeSpan duration, string? kernel, string prefix, TimeSpan timeout, Action? onMeasureStart = null,
        int? serverPid = null, string? state = null)
    {
        var pid = serverPid ?? Environment.ProcessId;
        var start = NativeLoadGenerator.NativeLoadGenerator.Selected() == NativeLoadGenerator.NativeLoadGenerator.Native
            ? NativeLoadGenerator.NativeLoadGenerator.StartInfo(target, call, clients, duration, kernel, prefix, state)
            : StartInfo(target, call, clients, duration, kernel, prefix, state);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        TimeSpan? cpuAtStart = null;
        long windowStart = 0;
        long? switchesAtStart = null;
        try
        {
            while (await process.StandardOutput.ReadLineAsync(cts.Token) is { } line)
            {
                if (line == MeasureLine)
                {
                    windowStart = Stopwatch.GetTimestamp();
                    cpuAtStart = ProcFs.CpuTime(pid);
                    switchesAtStart = ProcFs.ContextSwitches(pid);
                    onMeasureStart?.Invoke();
                }
                else if (line.StartsWith(ChildRun.Prefix, StringComparison.Ordinal) && cpuAtStart is { } before)
                {
                    var serverCpu = (ProcFs.CpuTime(pid) ?? before) - before;
                    var switches = ProcFs.ContextSwitches(pid) - switchesAtStart;
                    var window = Stopwatch.GetElapsedTime(windowStart);
                    await process.WaitForExitAsync(cts.Token);
                    var client = JsonSerializer.Deserialize<Dictionary<string, double>>(line[ChildRun.Prefix.Length..])!;
                    client["server_ctxsw"] = switches ?? -1; // issue 15: the server's context switches in the window
                    return (client, serverCpu, window);
                }
            }

            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"load generator ({call}, {clients} clients) did not finish within {timeout.TotalMinutes:0} min");
        }

        var err = await stderr;
        throw new InvalidOperationException($"load generator ({call}, {clients} clients) failed (exit {process.ExitCode}): {(err.Length > 3000 ? err[^3000..] : err)}");
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Hypercore.Benchmarks.Runner;

/// <summary>
/// The in-process benchmarks run the daemon's code, so their children run under the daemon's own runtime settings:
/// vistarad.runtimeconfig.json, which the runner's build copies from the daemon's (src/Hypercore.Daemon: workstation
/// background GC, its 6 MB gen0 budget, no thread-pool spinning), passed to <c>dotnet exec --runtimeconfig</c>. Nothing
/// here repeats a setting: a change to the daemon's project reaches the children with the next build.
/// </summary>
/// <remarks>
/// A child started by hand starts itself again that way (<see cref="MustRestart"/>). The runner itself and the client
/// processes it starts (<see cref="Api.LoadGenerator"/>, the watch clients) keep the runner's own runtimeconfig.json:
/// they stand for remote callers, not the daemon; the clients also get the <see cref="ClientSettings"/> (issue 15, lg12).
/// </remarks>
public static class DaemonRuntime
{
    /// <summary>The daemon's runtimeconfig.json, beside the runner's assembly.</summary>
    public const string ConfigFileName = "vistarad.runtimeconfig.json";

    /// <summary>The child that only reports the runtime it runs under (tests; <c>--child runtime</c>).</summary>
    public const string ChildKind = "runtime";

    private const string ConfigPrefix = "config:";

    /// <summary>A setting not set, or not a number (JSON has no NaN).</summary>
    private const double Absent = -1;

    /// <summary>
    /// Set in a child started under the daemon's runtimeconfig.json (and in what it starts). A child started without it
    /// (by hand: <c>Hypercore.Benchmarks --child api-stopped …</c>) starts itself again under the daemon's settings. Its
    /// value lists the <see cref="JitSettings"/> the child was given (that its clients must not get).
    /// </summary>
    private const string Marker = "HYPERCORE_BENCH_DAEMON_RUNTIME";

    /// <summary>
    /// How the daemon-code children compile: every method optimized at its first call, none from ReadyToRun images and
    /// none tiered up later. The daemon these children stand for is Native AOT (all code compiled ahead, optimized, no
    /// JIT), and with tiered compilation the JIT was still at work inside the measured window (running8: its thread
    /// 10–35 % of the Running child's samples there, 12–26 µs of CPU per Create); with both off it is idle there
    /// (ApiThroughput reports the methods compiled and the JIT time inside the window). A setting already in the
    /// environment is kept (an A/B: <c>DOTNET_TieredCompilation=1 DOTNET_ReadyToRun=1</c> for the JIT's defaults), and
    /// the runner warns about it. Environment variables, not runtimeconfig.json: ReadyToRun has no runtime property.
    /// </summary>
    public static readonly IReadOnlyList<(string Name, string Value)> JitSettings = [("DOTNET_TieredCompilation", "0"), ("DOTNET_ReadyToRun", "0")];

    /// <summary>
    /// Whether a child runs the daemon's code, and therefore runs under its settings: all but api-daemon and api-node,
    /// which only drive a server process (vistarad, the benchmark node) that has its own.
    /// </summary>
    public static bool RunsDaemonCode(string kind) => kind is not (Api.ApiDaemonThroughput.ChildKind or Api.ApiNodeThroughput.ChildKind);

    /// <summary>
    /// Whether a daemon-code child gets the <see cref="JitSettings"/>: those measured in steady state (api, api-alone,
    /// api-stopped, watch, pipeline; their windows start after a warm-up). Not scale and scale-resync: they time a pass
    /// from a fresh host, cold, JIT included, and compiling every method optimized would make that start dearer still
    /// (the AOT daemon compiles none); they keep the JIT's defaults, as before.
    /// </summary>
    public static bool CompilesOptimized(string kind) =>
        RunsDaemonCode(kind) && kind is not (Scale.ReconcileScale.ChildKind or Scale.ReconcileScale.ResyncChildKind);

    /// <summary>Whether this process is a child that has to start itself again under the daemon's settings.</summary>
    public static bool MustRestart(string kind) => RunsDaemonCode(kind) && Environment.GetEnvironmentVariable(Marker) is null;

    /// <summary>This child again, under the daemon's settings, with the same arguments and standard streams; its exit code.</summary>
    public static async Task<int> RestartAsync(string[] args)
    {
        var kind = args.SkipWhile(a => a != "--child").Skip(1).FirstOrDefault() ?? ChildKind;
        var start = StartInfo(typeof(DaemonRuntime).Assembly.Location, kind);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        await process.WaitForExitAsync();
        return process.ExitCode;
    }

    /// <summary>The daemon's runtimeconfig.json beside <paramref name="runner"/> (the runner's assembly).</summary>
    public static string ConfigPath(string runner) => Path.Combine(Path.GetDirectoryName(runner)!, ConfigFileName);

    /// <summary>
    /// A child of <paramref name="runner"/> (its assembly) under the daemon's runtimeconfig.json, and the
    /// <see cref="JitSettings"/> if the <paramref name="kind"/> gets them (<see cref="CompilesOptimized"/>).
    /// </summary>
    internal static ProcessStartInfo StartInfo(string runner, string kind)
    {
        var config = ConfigPath(runner);
        if (!File.Exists(config))
        {
            throw new FileNotFoundException($"the daemon's runtime settings are not beside the runner ({config}); the runner's build copies them from src/Hypercore.Daemon", config);
        }

        var start = new ProcessStartInfo(DotnetHost());
        foreach (var arg in (string[])["exec", "--runtimeconfig", config, runner])
        {
            start.ArgumentList.Add(arg);
        }

        var given = new List<string>();
        foreach (var (name, value) in CompilesOptimized(kind) ? JitSettings : [])
        {
            if (Setting(name["DOTNET_".Length..]) is null)
            {
                start.Environment[name] = value;
                given.Add(name);
            }
        }

        start.Environment[Marker] = given.Count == 0 ? "-" : string.Join(',', given);
        return start;
    }

    /// <summary>
    /// How the client processes (the load generator, the watch clients) run (issue 15, lg12: bench/NOTES.md): they stand
    /// for remote callers, but here they share the server's two cores and measure its latency, so every microsecond of
    /// CPU they burn is taken from the server and every stall of theirs is in the measured tail. Like the daemon-code
    /// children they compile every method optimized at its first call (under tiered compilation the load generator's JIT
    /// was still recompiling 800-2,000 methods inside the measured window, after its 3 s warm-up: ~70 µs of its ~140 µs
    /// of CPU per Create on a loaded machine), and their thread pool does not spin waiting for work (as vistarad's: the
    /// spinning of the runtime's default, 70, was CPU taken from the server), and their gen0 budget is 64 MB (the
    /// load generator allocates ~10 KB per Create, nearly all of it Grpc.Net.Client's and HttpClient's; with the
    /// collector's own budget it collected 9-16 times in a 6 s window, each collection stopping all 64 clients' calls
    /// in flight; with 64 MB 4-5 times, less pause in all: one collection is a few ms however large gen0 is, as
    /// almost nothing survives it). A setting already in the environment is kept (an A/B), as <see cref="StartInfo"/> does.
    /// </summary>
    public static readonly IReadOnlyList<(string Name, string Value)> ClientSettings =
        [.. JitSettings, ("DOTNET_ThreadPool_UnfairSemaphoreSpinLimit", "0"), ("DOTNET_GCgen0size", "0x4000000")];

    /// <summary>
    /// A client process (the load generator, the watch clients; started by the runner or by a daemon-code child): under
    /// the runner's runtimeconfig.json and the <see cref="ClientSettings"/>; then <see cref="ClientEnv"/>.
    /// </summary>
    internal static ProcessStartInfo ForClient(ProcessStartInfo start)
    {
        // The settings a daemon-code child was given are given to its clients again below; those set by hand stay.
        if (start.Environment.TryGetValue(Marker, out var given) && given is not null)
        {
            foreach (var name in given.Split(',', StringSplitOptions.RemoveEmptyEntries))
            {
                start.Environment.Remove(name);
            }
        }

        foreach (var (name, value) in ClientSettings)
        {
            if (!start.Environment.ContainsKey(name) && !start.Environment.ContainsKey("COMPlus_" + name["DOTNET_".Length..]))
            {
                start.Environment[name] = value;
            }
        }

        // HYPERCORE_BENCH_CLIENT_ENV="NAME=VALUE …" (issue 15, lg12): environment for the client processes alone, for an
        // A/B of their runtime settings against the same server (space-separated).
        foreach (var (name, value) in ClientEnvironment())
        {
            start.Environment[name] = value;
        }

        return start;
    }

    /// <summary>The pairs of <see cref="ClientEnv"/> (space-separated NAME=VALUE), for every client process, .NET or native.</summary>
    internal static IEnumerable<(string Name, string Value)> ClientEnvironment() =>
        (Environment.GetEnvironmentVariable(ClientEnv) ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(pair => pair.IndexOf('=') is > 0 and var at ? (pair[..at], pair[(at + 1)..]) : throw new ArgumentException($"{ClientEnv}: not NAME=VALUE: {pair}"));

    /// <summary>Environment for the client processes alone (<see cref="ForClient"/>), for an A/B.</summary>
    public const string ClientEnv = "HYPERCORE_BENCH_CLIENT_ENV";

    /// <summary>A runtime setting as the runtime reads it from the environment (DOTNET_ before COMPlus_); null: not set.</summary>
    private static string? Setting(string name) =>
        Environment.GetEnvironmentVariable("DOTNET_" + name) ?? Environment.GetEnvironmentVariable("COMPlus_" + name);

    /// <summary>The dotnet host of the runtime this process runs on (&lt;root&gt;/shared/Microsoft.NETCore.App/&lt;version&gt;/).</summary>
    private static string DotnetHost()
    {
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
        {
            return Environment.ProcessPath!;
        }

        var host = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", "dotnet"));
        return File.Exists(host) ? host : "dotnet";
    }

    /// <summary>
    /// The runtime this process runs under, as numbers for the child's result: the collector's own view (background
    /// GC, server GC, its gen0 budget) and the thread pool's spin limit, then every property of the daemon's
    /// runtimeconfig.json as this process sees it (<c>config:NAME</c>).
    /// </summary>
    public static void Report(Dictionary<string, double> result)
    {
        result["runtime_gc_concurrent"] = GCSettings.LatencyMode == GCLatencyMode.Batch ? 0 : 1;
        result["runtime_gc_server"] = GCSettings.IsServerGC ? 1 : 0;
        result["runtime_gen0_budget"] = Convert.ToDouble(GC.GetConfigurationVariables()["GCGen0MaxBudget"], CultureInfo.InvariantCulture);
        // The smallest gen0 budget (GCgen0size; not in GC.GetConfigurationVariables): as the runtime reads it from the environment (hex).
        result["runtime_gen0_size"] = Hex(Setting("GCgen0size")) ?? Absent;
        // As the thread pool reads it: the environment (hex) before runtimeconfig.json.
        result["runtime_spin_limit"] = Setting("ThreadPool_UnfairSemaphoreSpinLimit") is { } spinText
            ? Hex(spinText) ?? Absent
            : AppContext.GetData("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit") is { } spin ? Number(spin) : Absent;
        // How this process compiles (JitSettings): 0 or 1 as the runtime reads its settings (the environment first,
        // then runtimeconfig.json; both on by default), and what the JIT did up to this report.
        result["runtime_tiered_compilation"] = Flag(Setting("TieredCompilation")) ?? (AppContext.GetData("System.Runtime.TieredCompilation") is { } tiered ? Number(tiered) : 1);
        result["runtime_ready_to_run"] = Flag(Setting("ReadyToRun")) ?? 1;
        result["runtime_jit_methods"] = System.Runtime.JitInfo.GetCompiledMethodCount();
        result["runtime_jit_ms"] = System.Runtime.JitInfo.GetCompilationTime().TotalMilliseconds;
        var config = ConfigPath(typeof(DaemonRuntime).Assembly.Location);
        if (File.Exists(config))
        {
            foreach (var name in Properties(config).Keys)
            {
                result[ConfigPrefix + name] = AppContext.GetData(name) is { } value && Number(value) is var n && !double.IsNaN(n) ? n : Absent;
            }
        }
    }

    /// <summary>How a child's code was compiled, from its <see cref="Report"/>, for a row's method text.</summary>
    public static string JitText(IReadOnlyDictionary<string, double> child) =>
        (child.GetValueOrDefault("runtime_tiered_compilation", 1), child.GetValueOrDefault("runtime_ready_to_run", 1)) switch
        {
            (0, 0) => "JIT-compiled optimized at first call (TieredCompilation=0, ReadyToRun=0: no tier-up, as near as a JIT gets to the AOT daemon)",
            (1, 1) => "under the JIT's defaults (tiered compilation and ReadyToRun code: tier-up inside the window)",
            var (tiered, r2r) => string.Create(CultureInfo.InvariantCulture, $"under TieredCompilation={tiered:0}, ReadyToRun={r2r:0}"),
        };

    /// <summary>A DOTNET_ setting's text as 0/1 (the runtime reads it as hex: "0" off, anything else on); null: not set.</summary>
    /// <summary>A number as the runtime reads it from the environment: hexadecimal, "0x" allowed; null: not set or not a number.</summary>
    private static long? Hex(string? text) =>
        text is not null && long.TryParse(text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text,
            NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var n) ? n : null;

    private static double? Flag(string? text) => text is null ? null : long.TryParse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var n) && n == 0 ? 0 : 1;

    /// <summary>
    /// The <c>runtime</c> child: the bytes allocated per gen0 collection on one thread, and how the JIT treats code it
    /// has not run yet (and, as every child, <see cref="Report"/>).
    /// </summary>
    public static Dictionary<string, double> RunChild()
    {
        var result = new Dictionary<string, double>();
        // The JIT's view: methods compiled by this thread for first calls of framework code this process has not run yet
        // (ReadyToRun code in System.Private.CoreLib: measured 5 compiled with ReadyToRun on, 53 with it off), and for a method
        // of ours called 300 times with pauses (tiered: compiled again at tier 1 on the tiering thread; not tiered: once).
        var jitted = System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: true);
        GC.KeepAlive(Convert.ToBase64String([1, 2, 3]) + Uri.EscapeDataString("a b") + System.Text.Rune.GetUnicodeCategory(new System.Text.Rune('a')));
        result["runtime_r2r_probe_jitted"] = System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: true) - jitted;
        Thread.Sleep(1); // compiled before the count (with ReadyToRun off)
        var all = System.Runtime.JitInfo.GetCompiledMethodCount();
        var sum = 0L;
        for (var round = 0; round < 3; round++)
        {
            for (var i = 0; i < 100; i++)
            {
                sum += Probe(i);
            }

            Thread.Sleep(300); // the tiering delay (100 ms without new tier-0 code), then the background compile
        }

        result["runtime_tier_probe_jitted"] = System.Runtime.JitInfo.GetCompiledMethodCount() - all;
        GC.KeepAlive(sum);
        var keep = new object[64];
        var gen0 = GC.CollectionCount(0);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1_000_000; i++)
        {
            keep[i & 63] = new byte[100];
        }

        var collections = GC.CollectionCount(0) - gen0;
        result["runtime_bytes_per_gen0"] = collections == 0 ? Absent : (GC.GetAllocatedBytesForCurrentThread() - before) / (double)collections;
        GC.KeepAlive(keep);
        return result;
    }

    /// <summary>
    /// What differs between a child's <see cref="Report"/> and the daemon's runtimeconfig.json (empty: nothing); the
    /// runner warns about each, and a test fails on any.
    /// </summary>
    /// <param name="optimized">Whether the child was to run under the <see cref="JitSettings"/> (<see cref="CompilesOptimized"/>).</param>
    public static List<string> Differences(IReadOnlyDictionary<string, double> child, string config, bool optimized = true)
    {
        var expected = Properties(config);
        var differences = new List<string>();
        void Expect(string key, double value, string what)
        {
            if (child.GetValueOrDefault(key, Absent) is var actual && !actual.Equals(value))
            {
                differences.Add($"{what}: {actual.ToString(CultureInfo.InvariantCulture)} where the daemon has {value.ToString(CultureInfo.InvariantCulture)}");
            }
        }

        foreach (var (name, value) in expected)
        {
            Expect(ConfigPrefix + name, value, name);
        }

        Expect("runtime_gc_concurrent", expected.GetValueOrDefault("System.GC.Concurrent", 1), "background GC (GCSettings.LatencyMode)");
        Expect("runtime_gc_server", expected.GetValueOrDefault("System.GC.Server", 0), "server GC (GCSettings.IsServerGC)");
        if (expected.TryGetValue("System.GC.Gen0MaxBudget", out var budget))
        {
            Expect("runtime_gen0_budget", budget, "the GC's gen0 budget (GC.GetConfigurationVariables)");
        }

        if (expected.TryGetValue("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit", out var spin))
        {
            Expect("runtime_spin_limit", spin, "thread-pool spin limit");
        }

        // Not in the daemon's file: its native build has no JIT (JitSettings).
        if (optimized)
        {
            Expect("runtime_tiered_compilation", 0, "tiered compilation (the AOT daemon has no JIT: the children compile every method optimized)");
            Expect("runtime_ready_to_run", 0, "ReadyToRun code (the AOT daemon has no JIT: the children compile every method optimized)");
        }

        return differences;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static long Probe(int i) => (i * 31L) ^ (i >> 3);

    /// <summary>The configProperties of a runtimeconfig.json, as numbers (<see cref="Absent"/>: text that is not one).</summary>
    public static Dictionary<string, double> Properties(string config)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(config));
        var properties = new Dictionary<string, double>(StringComparer.Ordinal);
        if (json.RootElement.GetProperty("runtimeOptions").TryGetProperty("configProperties", out var all))
        {
            foreach (var property in all.EnumerateObject())
            {
                properties[property.Name] = property.Value.ValueKind switch
                {
                    JsonValueKind.True => 1,
                    JsonValueKind.False => 0,
                    JsonValueKind.Number => property.Value.GetDouble(),
                    _ => Number(property.Value.GetString()!) is var n && !double.IsNaN(n) ? n : Absent, // (every one of the daemon's is a number)
                };
            }
        }

        return properties;
    }

    /// <summary>A runtime property as a number: true/false, decimal, or hex with 0x (as the runtime reads them).</summary>
    private static double Number(object value)
    {
        var text = Convert.ToString(value, CultureInfo.InvariantCulture)!;
        return text switch
        {
            _ when bool.TryParse(text, out var b) => b ? 1 : 0,
            _ when text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) && long.TryParse(text[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var hex) => hex,
            _ when double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
            _ => double.NaN,
        };
    }
}

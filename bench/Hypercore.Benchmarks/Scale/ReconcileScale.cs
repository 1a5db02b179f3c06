using System.Diagnostics;
using System.Globalization;
using Hypercore.Benchmarks.Api;
using Hypercore.Benchmarks.NoOp;
using Hypercore.Benchmarks.Processes;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Store;
using Hypercore.Store.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Hypercore.Benchmarks.Scale;

/// <summary>
/// One full resync pass over N records in SQLite: a fresh reconciler host lists the store, queues every key and
/// reconciles each once against a no-op driver that reports every VM Running (the steady state of a busy node, as
/// after a daemon restart). Timed from the host's start until N reconciles have finished.
/// </summary>
public static class ReconcileScale
{
    public const string Name = "Reconcile scale";
    public const string ChildKind = "scale";
    public const string ResyncChildKind = "scale-resync";

    public static async Task<List<ResultRow>> RunAsync(BenchContext ctx)
    {
        var rows = new List<ResultRow>();
        var largest = ctx.Options.ScaleRecords.Max();
        foreach (var n in ctx.Options.ScaleRecords)
        {
            BenchContext.Log($"scale: {n:N0} records");
            // Seeding and the first pass in one process, the timed resync in a fresh one (as after a daemon
            // restart): its memory figure is then the resync's own, not the high-water mark of the seeding.
            var r = await ChildRun.RunAsync(ctx, ChildKind, n, TimeSpan.FromMinutes(15));
            var passes = await ChildRounds.RunAsync(ctx.Options.ScaleRounds, async round =>
            {
                var pass = await ChildRun.RunAsync(ctx, ResyncChildKind, n, TimeSpan.FromMinutes(15));
                if (ctx.Options.ScaleRounds > 1)
                {
                    BenchContext.Log(string.Create(CultureInfo.InvariantCulture,
                        $"scale: {n:N0} records, resync {round} of {ctx.Options.ScaleRounds}: {Fmt.Number(pass["pass_s"])} s, {Fmt.Number(pass["pass_cpu_s"])} s CPU, {Fmt.Number(pass["rss_mb"])} MB"));
                }

                return pass;
            });

            foreach (var (k, v) in MedianPass(passes))
            {
                r[k] = v;
            }

            rows.Add(new ResultRow(Name, $"resync pass, {n:N0} records", r["pass_s"], "s",
                $"fresh reconciler (4 workers) lists, queues and reconciles every record once; no status changes; " +
                $"{Fmt.Number(r["alloc_kb_per"])} KB allocated and {Fmt.Number(r["us_per"])} µs wall per reconcile; GCs gen0/1/2 {r["gen0"]:0}/{r["gen1"]:0}/{r["gen2"]:0}" +
                PassesText(passes))
            {
                // Issue 15 raised the scale to 100,000 records in 5 s; the older 10,000-in-1 s goal stays for that size.
                Goal = n >= 100_000 ? Goal.AtMost(5, "s") : n == largest && n >= 10_000 ? Goal.AtMost(1, "s") : null,
            });
            rows.Add(new ResultRow(Name, $"CPU of the resync pass, {n:N0} records", r["pass_cpu_s"], "s",
                $"utime + stime of the process over the pass (all threads; {Fmt.Number(r["pass_cpu_s"] * 1e6 / n)} µs per record); less sensitive to other load than the wall time"));
            rows.Add(new ResultRow(Name, $"one change → informer and reconciler, {n:N0} records stored", r["event_ms"], "ms",
                "median of 20 spec writes to one record, from the write's call to the reconciler's informer seeing it; the store's watch and the informer must cost O(changes), " +
                "so this should not grow with the records stored (compare the sizes)"));
            rows.Add(new ResultRow(Name, $"first pass, {n:N0} new records", r["first_s"], "s",
                "every record claimed and its status written Running (2 durable writes per VM, group-committed)"));
            rows.Add(new ResultRow(Name, $"process memory after the pass, {n:N0} records", r["rss_mb"], "MB",
                $"VmRSS of the process that ran only the resync pass (store + informer cache + reconciler + runtime; as after a daemon restart); managed heap {Fmt.Number(r["heap_mb"])} MB")
            {
                Goal = n >= 100_000 ? Goal.AtMost(500, "MB") : null,
            });
        }

        return rows;
    }

    /// <summary>
    /// The pass whose time is the median of <paramref name="passes"/> (for an even count the slower of the two middle
    /// ones: the row never rounds a time down), so that the time, CPU and memory rows all come from one pass.
    /// </summary>
    public static Dictionary<string, double> MedianPass(IReadOnlyList<Dictionary<string, double>> passes)
    {
        if (passes.Count == 0)
        {
            throw new ArgumentException("no passes", nameof(passes));
        }

        var ordered = passes.OrderBy(p => p["pass_s"]).ToList();
        return ordered[ordered.Count / 2];
    }

    /// <summary>What the resync row's method text adds about the passes: nothing for one; else every pass's figures, in order.</summary>
    public static string PassesText(IReadOnlyList<Dictionary<string, double>> passes)
    {
        if (passes.Count < 2)
        {
            return "";
        }

        string List(string key) => string.Join(", ", passes.Select(p => Fmt.Number(p[key])));
        return string.Create(CultureInfo.InvariantCulture,
            $"; the figures (here and in the CPU and memory rows) are those of the pass with the median time of {passes.Count}, each a fresh process on the same records, one after the other: " +
            $"passes {List("pass_s")} s; CPU {List("pass_cpu_s")} s; VmRSS {List("rss_mb")} MB");
    }

    public static async Task<Dictionary<string, double>> RunChildAsync(BenchOptions options, int records)
    {
        var dir = Directory.CreateDirectory(Path.Combine(options.WorkDirectory!, $"scale-{records}")).FullName;
        var db = Path.Combine(dir, "hypercore.db");

        using (var seed = Build(db, reconciler: false))
        {
            await seed.StartAsync();
            var store = seed.Services.GetRequiredService<IMicroVmStore>();
            await Parallel.ForEachAsync(Enumerable.Range(0, records), new ParallelOptions { MaxDegreeOfParallelism = 256 }, async (i, ct) =>
                await store.CreateAsync(new MicroVmSpec { Id = $"vm-{i:D6}", Namespace = "scale", Kernel = new KernelSpec { Image = "/k" } }, ct));
            await seed.StopAsync();
        }

        var first = await PassAsync(db, records);
        return new Dictionary<string, double> { ["first_s"] = first.Elapsed.TotalSeconds };
    }

    /// <summary>The timed resync pass over the records <see cref="RunChildAsync"/> left, in a fresh process.</summary>
    public static async Task<Dictionary<string, double>> RunResyncChildAsync(BenchOptions options, int records)
    {
        var db = Path.Combine(options.WorkDirectory!, $"scale-{records}", "hypercore.db");
        var gc = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var timed = await PassAsync(db, records, measureEvents: true);
        var allocatedPer = (GC.GetTotalAllocatedBytes(precise: true) - allocated) / (double)records;
        return new Dictionary<string, double>
        {
            ["pass_s"] = timed.Elapsed.TotalSeconds,
            ["us_per"] = timed.Elapsed.TotalMilliseconds * 1000 / records,
            ["alloc_kb_per"] = allocatedPer / 1024,
            ["gen0"] = GC.CollectionCount(0) - gc.Item1,
            ["gen1"] = GC.CollectionCount(1) - gc.Item2,
            ["gen2"] = GC.CollectionCount(2) - gc.Item3,
            ["rss_mb"] = timed.RssBytes / 1048576.0,
            ["heap_mb"] = timed.HeapBytes / 1048576.0,
            ["pass_cpu_s"] = timed.Cpu.TotalSeconds,
            ["event_ms"] = timed.EventMs,
        };
    }

    private static async Task<(TimeSpan Elapsed, long RssBytes, long HeapBytes, TimeSpan Cpu, double EventMs)> PassAsync(string db, int records, bool measureEvents = false)
    {
        using var host = Build(db, reconciler: true);
        var reconciler = host.Services.GetRequiredService<ReconcilerHost>();
        var cpu = ProcFs.CpuTime(Environment.ProcessId) ?? TimeSpan.Zero;
        var started = Stopwatch.GetTimestamp();
        await host.StartAsync();
        var deadline = Stopwatch.GetTimestamp() + 10 * 60 * Stopwatch.Frequency;
        while (reconciler.Completed < records)
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"only {reconciler.Completed} of {records} reconciles in 10 min");
            }

            await Task.Delay(1);
        }

        var elapsed = Stopwatch.GetElapsedTime(started);
        cpu = (ProcFs.CpuTime(Environment.ProcessId) ?? cpu) - cpu;
        var rss = ProcFs.RssBytes(Environment.ProcessId) ?? 0;
        var heap = GC.GetTotalMemory(forceFullCollection: false);
        var eventMs = measureEvents ? await EventLatencyAsync(host) : double.NaN;
        await host.StopAsync();
        return (elapsed, rss, heap, cpu, eventMs);
    }

    /// <summary>Median time from a spec write to the informer's event for it, with every record in the store.</summary>
    private static async Task<double> EventLatencyAsync(IHost host)
    {
        var store = host.Services.GetRequiredService<IMicroVmStore>();
        var informer = host.Services.GetRequiredService<Hypercore.Informers.MicroVmInformer>();
        var key = new VmKey("scale", "vm-000000");
        var seen = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        string? waitFor = null;
        using var handler = informer.AddHandler(ev =>
        {
            if (Volatile.Read(ref waitFor) is { } label && ev.MicroVm.Spec.Labels.TryGetValue("n", out var n) && n == label)
            {
                seen.TrySetResult(Stopwatch.GetTimestamp());
            }
        });
        var times = new List<double>();
        for (var i = 0; i < 20; i++)
        {
            seen = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            var label = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Volatile.Write(ref waitFor, label);
            while (true)
            {
                var vm = (await store.GetAsync(key))!;
                var t0 = Stopwatch.GetTimestamp();
                try
                {
                    await store.UpdateSpecAsync(key, vm.Spec with { Labels = new Dictionary<string, string> { ["n"] = label } }, vm.ResourceVersion);
                }
                catch (ConflictException)
                {
                    continue; // the reconciler wrote the status (the spec change bumped the generation): read again
                }

                var t1 = await seen.Task.WaitAsync(TimeSpan.FromMinutes(1));
                times.Add((t1 - t0) * 1000.0 / Stopwatch.Frequency);
                break;
            }
        }

        times.Sort();
        return times[times.Count / 2];
    }

    internal static IHost Build(string db, bool reconciler)
    {
        var builder = NodeHost.CreateHostBuilder(); // no file watcher on the working directory
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSqliteStore(o =>
        {
            o.DatabasePath = db;
            o.NodeName = "bench";
        });
        builder.Services.AddSingleton(new DriverRegistry([new NoOpDriver("qemu", allRunning: true)], "qemu"));
        if (reconciler)
        {
            builder.Services.AddReconciler(o =>
            {
                o.NodeName = "bench";
                o.PollInterval = TimeSpan.FromHours(1); // one pass, not the polls that follow it
                o.ResyncInterval = TimeSpan.FromHours(1);
            });
        }

        return builder.Build();
    }
}

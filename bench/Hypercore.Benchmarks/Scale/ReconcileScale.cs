using System.Diagnostics;
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

    public static async Task<List<ResultRow>> RunAsync(BenchContext ctx)
    {
        var rows = new List<ResultRow>();
        var largest = ctx.Options.ScaleRecords.Max();
        foreach (var n in ctx.Options.ScaleRecords)
        {
            BenchContext.Log($"scale: {n:N0} records");
            var r = await ChildRun.RunAsync(ctx, ChildKind, n, TimeSpan.FromMinutes(15));
            rows.Add(new ResultRow(Name, $"resync pass, {n:N0} records", r["pass_s"], "s",
                $"fresh reconciler (4 workers) lists, queues and reconciles every record once; no status changes; " +
                $"{Fmt.Number(r["alloc_kb_per"])} KB allocated and {Fmt.Number(r["us_per"])} µs wall per reconcile; GCs gen0/1/2 {r["gen0"]:0}/{r["gen1"]:0}/{r["gen2"]:0}")
            {
                Goal = n == largest && n >= 10_000 ? Goal.AtMost(1, "s") : null,
            });
            rows.Add(new ResultRow(Name, $"first pass, {n:N0} new records", r["first_s"], "s",
                "every record claimed and its status written Running (2 durable writes per VM, group-committed)"));
            rows.Add(new ResultRow(Name, $"process memory after the pass, {n:N0} records", r["rss_mb"], "MB",
                $"VmRSS of the process (store + reconciler + runtime); managed heap {Fmt.Number(r["heap_mb"])} MB"));
        }

        return rows;
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
        GC.Collect();
        var gc = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var timed = await PassAsync(db, records);
        var allocatedPer = (GC.GetTotalAllocatedBytes(precise: true) - allocated) / (double)records;
        var result = new Dictionary<string, double>
        {
            ["pass_s"] = timed.Elapsed.TotalSeconds,
            ["first_s"] = first.Elapsed.TotalSeconds,
            ["us_per"] = timed.Elapsed.TotalMilliseconds * 1000 / records,
            ["alloc_kb_per"] = allocatedPer / 1024,
            ["gen0"] = GC.CollectionCount(0) - gc.Item1,
            ["gen1"] = GC.CollectionCount(1) - gc.Item2,
            ["gen2"] = GC.CollectionCount(2) - gc.Item3,
            ["rss_mb"] = timed.RssBytes / 1048576.0,
            ["heap_mb"] = timed.HeapBytes / 1048576.0,
        };
        return result;
    }

    private static async Task<(TimeSpan Elapsed, long RssBytes, long HeapBytes)> PassAsync(string db, int records)
    {
        using var host = Build(db, reconciler: true);
        var reconciler = host.Services.GetRequiredService<ReconcilerHost>();
        var started = Stopwatch.GetTimestamp();
        await host.StartAsync();
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(10);
        while (reconciler.Completed < records)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"only {reconciler.Completed} of {records} reconciles in 10 min");
            }

            await Task.Delay(1);
        }

        var elapsed = Stopwatch.GetElapsedTime(started);
        var rss = ProcFs.RssBytes(Environment.ProcessId) ?? 0;
        var heap = GC.GetTotalMemory(forceFullCollection: false);
        await host.StopAsync();
        return (elapsed, rss, heap);
    }

    private static IHost Build(string db, bool reconciler)
    {
        var builder = Host.CreateApplicationBuilder();
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

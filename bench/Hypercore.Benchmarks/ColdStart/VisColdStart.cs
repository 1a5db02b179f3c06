using System.Diagnostics;
using Hypercore.Benchmarks.Boot;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;

namespace Hypercore.Benchmarks.ColdStart;

/// <summary>
/// `vis` cold start: process start → exit of `vis --version` (no daemon) and of `vis list` against a running daemon
/// (one List call over loopback). `vis` is run in shell loops, so each call pays the runtime's start.
/// </summary>
public static class VisColdStart
{
    public const string Name = "vis cold start";

    public static async Task<List<ResultRow>> RunAsync(BenchContext ctx)
    {
        var goal = Goal.AtMost(50, "ms");
        string[] metrics = ["vis --version: process start → exit", "vis list (running daemon): process start → exit"];
        var why = ctx.Options.VisPath is null ? "no --vis given (bench/run.sh passes the published vis)" :
            !File.Exists(ctx.Options.VisPath) ? $"vis {ctx.Options.VisPath} not found" :
            ctx.DaemonUnavailable();
        if (why is not null)
        {
            return [.. metrics.Select(m => ResultRow.Skipped(Name, m, why, goal))];
        }

        await using var daemon = ctx.StartDaemon(ctx.NewStateDirectory("vis"));
        await daemon.WaitReadyAsync(TimeSpan.FromMinutes(2));
        var rows = new List<ResultRow>();
        var jit = ctx.Options.VisJitPath is { } j && File.Exists(j) ? j : null;
        foreach (var (metric, args) in new[] { (metrics[0], new[] { "--version" }), (metrics[1], new[] { "--host", daemon.GrpcAddress, "list" }) })
        {
            await TimeOnceAsync(ctx.Options.VisPath!, args); // warm-up (page cache), not counted
            if (jit is not null)
            {
                await TimeOnceAsync(jit, args);
            }

            var times = new List<TimeSpan>();
            var jitTimes = new List<TimeSpan>();
            for (var i = 0; i < ctx.Options.ColdStarts; i++)
            {
                // ABBA with the JIT baseline, so drift in the machine's load falls on both.
                var jitFirst = i % 2 == 1;
                if (jit is not null && jitFirst)
                {
                    jitTimes.Add(await TimeOnceAsync(jit, args));
                }

                times.Add(await TimeOnceAsync(ctx.Options.VisPath!, args));
                if (jit is not null && !jitFirst)
                {
                    jitTimes.Add(await TimeOnceAsync(jit, args));
                }
            }

            var median = BootOverhead.MedianOf(times);
            var baseline = jitTimes.Count > 0 ? $"; JIT build {jit} (framework-dependent, ReadyToRun) in the same run, interleaved: median {Fmt.Ms(BootOverhead.MedianOf(jitTimes))} (min {Fmt.Ms(jitTimes.Min())}), {BootOverhead.MedianOf(jitTimes) / median:0.0} × the measured" : "";
            BenchContext.Log($"vis {string.Join(' ', args)}: median {Fmt.Ms(median)}{(jitTimes.Count > 0 ? $", JIT {Fmt.Ms(BootOverhead.MedianOf(jitTimes))}" : "")}");
            rows.Add(new ResultRow(Name, metric, median.TotalMilliseconds, "ms",
                $"median of {times.Count} (min {Fmt.Ms(times.Min())}, max {Fmt.Ms(times.Max())}); {ctx.Options.VisPath} (bench/run.sh: scripts/publish-vis.sh, Native AOT unless the toolchain is missing); wall time until exit, exit code 0 required{baseline}")
            {
                Goal = goal,
                Reference = jitTimes.Count > 0 ? $"JIT {Fmt.Ms(BootOverhead.MedianOf(jitTimes))}" : "",
            });
        }

        return rows;
    }

    private static async Task<TimeSpan> TimeOnceAsync(string vis, string[] args)
    {
        var start = new ProcessStartInfo(vis) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        var t0 = Stopwatch.GetTimestamp();
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(cts.Token);
        var took = Stopwatch.GetElapsedTime(t0);
        await stdout;
        return process.ExitCode == 0
            ? took
            : throw new InvalidOperationException($"vis {string.Join(' ', args)} exited {process.ExitCode}: {await stderr}");
    }
}

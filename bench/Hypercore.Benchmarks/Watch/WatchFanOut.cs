using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Hypercore.Benchmarks.Api;
using Hypercore.Benchmarks.Processes;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;
using Hypercore.MicroVms;
using Hypercore.Store;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Benchmarks.Watch;

/// <summary>
/// Issue 15, goal 5: N concurrent gRPC Watch streams on one node; one spec change must reach all of them quickly,
/// and each stream must cost the daemon little memory. The node (API, SQLite, informer; reconciler off so that the
/// change is the only event) runs in a child process, the N streams in another (<see cref="WatchClients"/>).
/// Latency is measured per stream from just before the store write (a Stopwatch timestamp carried in a label of
/// the changed spec; CLOCK_MONOTONIC, shared by both processes) to the event's arrival in the client.
/// </summary>
public static class WatchFanOut
{
    public const string Name = "Watch fan-out";
    public const string ChildKind = "watch";
    public const string Rounds = "5";

    /// <summary>Changes sent to every stream before the measured ones: the first ones run while the JIT compiles the fan-out path.</summary>
    public const string WarmRounds = "3";
    internal const string StampLabel = "bench-t0";

    public static async Task<List<ResultRow>> RunAsync(BenchContext ctx)
    {
        var streams = ctx.Options.WatchStreams;
        BenchContext.Log($"watch: {streams:N0} streams, {Rounds} spec changes");
        var r = await ChildRun.RunAsync(ctx, ChildKind, streams, TimeSpan.FromMinutes(10));
        var full = streams >= 1000;
        var method = $"{streams:N0} Watch streams (one client process, HTTP/2 connections opened as needed) on one node (API, SQLite, informer; reconciler off); " +
            $"{Rounds} spec changes 1 s apart via the store, after {WarmRounds} unmeasured ones; per stream, store write → event read by the client; {r["events"]:0} events, {r["missed"]:0} missed";
        return
        [
            new ResultRow(Name, $"spec change → all {streams:N0} streams, p99", r["p99_ms"], "ms", method)
            {
                Goal = full ? Goal.AtMost(100, "ms") : null,
            },
            new ResultRow(Name, $"spec change → all {streams:N0} streams, p50", r["p50_ms"], "ms", $"same runs; slowest stream of the worst round {Fmt.Number(r["max_ms"])} ms"),
            new ResultRow(Name, "daemon RSS growth per open stream", r["rss_kb_per"], "KB",
                $"VmRSS of the node after all {streams:N0} streams had their first event minus before any (GC'd both times), ÷ streams; " +
                $"{Fmt.Number(r["rss_before_mb"])} → {Fmt.Number(r["rss_after_mb"])} MB; private (RssAnon + RssShmem) {Fmt.Number(r["private_kb_per"])} KB per stream")
            {
                Goal = full ? Goal.AtMost(50, "KB") : null,
            },
            new ResultRow(Name, "server CPU per delivered event", r["cpu_us_per"], "µs",
                "utime + stime of the node over the measured change rounds ÷ events delivered (informer fan-out, mapping, HTTP/2 write); includes the 1 s pauses' idle work (timers, GC)"),
        ];
    }

    /// <summary>The node side, in a child process.</summary>
    public static async Task<Dictionary<string, double>> RunChildAsync(BenchOptions options, int streams)
    {
        var dir = Directory.CreateDirectory(Path.Combine(options.WorkDirectory!, $"watch-{streams}")).FullName;
        await using var node = await InProcessNode.StartAsync(dir, reconciler: false);
        var store = node.Services.GetRequiredService<IMicroVmStore>();
        var vm = await store.CreateAsync(new MicroVmSpec { Id = "watched", Namespace = "bench", Kernel = new KernelSpec { Image = node.KernelPath } });

        var start = ChildRun.SelfStartInfo();
        foreach (var arg in (string[])[WatchClients.Flag, "--target", node.GrpcAddress, "--streams", streams.ToString(CultureInfo.InvariantCulture), "--rounds", Rounds, "--warm", WarmRounds])
        {
            start.ArgumentList.Add(arg);
        }

        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.RedirectStandardInput = true;
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        var result = new Dictionary<string, double>();
        double rssBefore = 0, privateBefore = 0;
        TimeSpan cpuBefore = default;
        var rounds = 0;
        try
        {
            while (await process.StandardOutput.ReadLineAsync(cts.Token) is { } line)
            {
                if (line == WatchClients.WarmLine)
                {
                    (rssBefore, privateBefore) = await MemoryAsync();
                    await process.StandardInput.WriteLineAsync("go");
                    await process.StandardInput.FlushAsync(cts.Token);
                }
                else if (line == WatchClients.ReadyLine)
                {
                    var (rssAfter, privateAfter) = await MemoryAsync();
                    result["rss_before_mb"] = rssBefore / 1048576;
                    result["rss_after_mb"] = rssAfter / 1048576;
                    result["rss_kb_per"] = (rssAfter - rssBefore) / 1024 / streams;
                    result["private_kb_per"] = (privateAfter - privateBefore) / 1024 / streams;
                    await ChangeAsync();
                }
                else if (line == WatchClients.RoundLine)
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), cts.Token);
                    if (++rounds == int.Parse(WarmRounds, CultureInfo.InvariantCulture))
                    {
                        cpuBefore = ProcFs.CpuTime(Environment.ProcessId) ?? TimeSpan.Zero;
                    }

                    await ChangeAsync();
                }
                else if (line.StartsWith(ChildRun.Prefix, StringComparison.Ordinal))
                {
                    var cpu = (ProcFs.CpuTime(Environment.ProcessId) ?? TimeSpan.Zero) - cpuBefore;
                    foreach (var (k, v) in JsonSerializer.Deserialize<Dictionary<string, double>>(line[ChildRun.Prefix.Length..])!)
                    {
                        result[k] = v;
                    }

                    // The last round's 1 s pause is not in the window: the client reports right after the last event.
                    result["cpu_us_per"] = result["events"] == 0 ? 0 : cpu.TotalMilliseconds * 1000 / result["events"];
                    process.StandardInput.Close();
                    await process.WaitForExitAsync(cts.Token);
                    return result;
                }
            }

            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"watch clients ({streams} streams) did not finish in time");
        }

        var err = await stderr;
        throw new InvalidOperationException($"watch clients failed (exit {process.ExitCode}): {(err.Length > 3000 ? err[^3000..] : err)}");

        async Task ChangeAsync()
        {
            var current = (await store.GetAsync(vm.Key))!;
            var labels = new Dictionary<string, string>(current.Spec.Labels)
            {
                [StampLabel] = Stopwatch.GetTimestamp().ToString(CultureInfo.InvariantCulture),
            };
            await store.UpdateSpecAsync(vm.Key, current.Spec with { Labels = labels }, current.ResourceVersion);
        }
    }

    private static async Task<(double Rss, double Private)> MemoryAsync()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        await Task.Delay(200);
        return (ProcFs.RssBytes(Environment.ProcessId) ?? 0, ProcFs.PrivateBytes(Environment.ProcessId) ?? 0);
    }
}

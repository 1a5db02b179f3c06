using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using Hypercore.Benchmarks.Boot;
using Hypercore.Benchmarks.Processes;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Benchmarks.ColdStart;

/// <summary>
/// vistarad process start → first answered gRPC call (List), each start with a fresh state directory (new
/// database), median of N after one unmeasured start that warms the page cache and this client's JIT. Idle RSS is
/// read 5 s after the first answer. Each measured start is followed by one with the image prefault turned off
/// (HYPERCORE_PREFAULT=0, src/Hypercore.Daemon/Native/prefault.c; the native build's only), reported beside it.
/// </summary>
public static class ColdStartBenchmark
{
    public const string Name = "Cold start";
    private static readonly TimeSpan IdleSettle = TimeSpan.FromSeconds(5);

    public static async Task<List<ResultRow>> RunAsync(BenchContext ctx)
    {
        // issue 15: like a native daemon (flintlockd starts in tens of ms at a few tens of MB).
        var startGoal = Goal.AtMost(150, "ms");
        var cpuGoal = Goal.AtMost(100, "ms");
        var memoryGoal = Goal.AtMost(40, "MB");
        if (ctx.DaemonUnavailable() is { } why)
        {
            return [ResultRow.Skipped(Name, "process start → first answered gRPC call", why, startGoal), ResultRow.Skipped(Name, "idle RSS", why, memoryGoal)];
        }

        _ = await StartOnceAsync(ctx, measureIdle: false); // warm-up, not counted
        var starts = new List<TimeSpan>();
        var ready = new List<TimeSpan>();
        var cpu = new List<TimeSpan>();
        var idle = new List<double>();
        var idlePrivate = new List<double>();
        var startsOff = new List<TimeSpan>();
        var cpuOff = new List<TimeSpan>();
        for (var i = 0; i < ctx.Options.ColdStarts; i++)
        {
            var (toAnswer, toReadyLine, cpuUsed, rss, own) = await StartOnceAsync(ctx, measureIdle: true);
            idlePrivate.Add(own);
            starts.Add(toAnswer);
            cpu.Add(cpuUsed);
            ready.Add(toReadyLine);
            idle.Add(rss);
            var off = await StartOnceAsync(ctx, measureIdle: false, PrefaultOff);
            startsOff.Add(off.ToAnswer);
            cpuOff.Add(off.Cpu);
            BenchContext.Log($"cold start {i + 1}/{ctx.Options.ColdStarts}: first answer {Fmt.Ms(toAnswer)} ({Fmt.Ms(cpuUsed)} CPU), idle RSS {Fmt.Number(rss)} MB; " +
                $"image prefault off: {Fmt.Ms(off.ToAnswer)} ({Fmt.Ms(off.Cpu)} CPU)");
        }

        var n = ctx.Options.ColdStarts;
        var visRows = await VisColdStart.RunAsync(ctx);
        var sortedIdle = idle.Order().ToList();
        var sortedPrivate = idlePrivate.Order().ToList();
        return
        [
            new ResultRow(Name, "process start → first answered gRPC call", BootOverhead.MedianOf(starts).TotalMilliseconds, "ms",
                $"median of {n} (min {Fmt.Ms(starts.Min())}, max {Fmt.Ms(starts.Max())}); List polled every 5 ms from process start; " +
                $"ready line on stdout after {Fmt.Ms(BootOverhead.MedianOf(ready))} (median)")
            {
                Goal = startGoal,
            },
            new ResultRow(Name, "CPU time used until the first answer", BootOverhead.MedianOf(cpu).TotalMilliseconds, "ms",
                "user + system time of vistarad (all threads) at the first answer, /proc/<pid>/stat, 10 ms resolution; median: less sensitive to other load than wall time")
            {
                Goal = cpuGoal,
            },
            new ResultRow(Name, "first answer with the image prefault off (HYPERCORE_PREFAULT=0)", BootOverhead.MedianOf(startsOff).TotalMilliseconds, "ms",
                $"median of {n}, each start right after one of the measured ones; CPU {Fmt.Ms(BootOverhead.MedianOf(cpuOff))} (median). The Native AOT daemon " +
                "populates the zero-filled tail of its image (~9 MB) with one madvise before main instead of taking a page fault per 4 KB during the start " +
                "(bench/NOTES.md, prefault17); a JIT build has no prefault and starts alike both ways")
            {
                Reference = $"with it: {Fmt.Ms(BootOverhead.MedianOf(starts))}, {Fmt.Ms(BootOverhead.MedianOf(cpu))} CPU",
            },
            new ResultRow(Name, "idle RSS", sortedIdle[sortedIdle.Count / 2], "MB",
                $"VmRSS {IdleSettle.TotalSeconds:0} s after the first answer, no VMs; median of {n}")
            {
                Goal = memoryGoal,
            },
            new ResultRow(Name, "idle private memory (RssAnon + RssShmem)", sortedPrivate[sortedPrivate.Count / 2], "MB",
                "the part of that RSS the daemon owns: heaps, stacks, JIT code; the rest is file-backed pages of the runtime and assemblies"),
            .. visRows,
        ];
    }

    private static readonly Dictionary<string, string> PrefaultOff = new() { ["HYPERCORE_PREFAULT"] = "0" };

    private static async Task<(TimeSpan ToAnswer, TimeSpan ToReadyLine, TimeSpan Cpu, double IdleRssMb, double IdlePrivateMb)> StartOnceAsync(
        BenchContext ctx, bool measureIdle, IReadOnlyDictionary<string, string>? environment = null)
    {
        var state = ctx.NewStateDirectory("cold");
        var t0 = Stopwatch.GetTimestamp();
        await using var daemon = ctx.StartDaemon(state, environment);
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        TimeSpan? toReady = null;
        _ = daemon.Ready.ContinueWith(_ => toReady = Stopwatch.GetElapsedTime(t0), TaskScheduler.Default);
        while (true)
        {
            try
            {
                // A fresh channel per attempt: a channel that saw "connection refused" backs off for up to a second
                // before it tries again, which would be measured as start time.
                using var channel = GrpcChannel.ForAddress(daemon.GrpcAddress);
                await new VMService.VMServiceClient(channel).ListAsync(new ListMicroVMsRequest(), deadline: DateTime.UtcNow.AddSeconds(5));
                break;
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal && DateTime.UtcNow < deadline)
            {
                if (daemon.Ready.IsFaulted)
                {
                    throw daemon.Ready.Exception!.InnerException!;
                }

                await Task.Delay(5);
            }
        }

        var toAnswer = Stopwatch.GetElapsedTime(t0);
        var cpu = ProcFs.CpuTime(daemon.Pid) ?? TimeSpan.Zero;
        await daemon.WaitReadyAsync(TimeSpan.FromMinutes(1));
        double rss = 0, own = 0;
        if (measureIdle)
        {
            await Task.Delay(IdleSettle);
            rss = (daemon.RssBytes ?? 0) / 1048576.0;
            own = (ProcFs.PrivateBytes(daemon.Pid) ?? 0) / 1048576.0;
        }

        return (toAnswer, toReady ?? Stopwatch.GetElapsedTime(t0), cpu, rss, own);
    }
}

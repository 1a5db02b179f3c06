using System.Diagnostics;
using Hypercore.Benchmarks.Boot;
using Hypercore.Benchmarks.Processes;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;
using Hypercore.Client;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Benchmarks.Density;

/// <summary>
/// N real TCG microVMs (1 vCPU, 128 MiB) created at once through the real daemon: time until all are Running and
/// until every guest printed its ready line, launches per second, the daemon's RSS; then delete all and check
/// that no QEMU of this run is left.
/// </summary>
public static class DensityBenchmark
{
    public const string Name = "Density";
    private const string Namespace = "density";

    public static async Task<List<ResultRow>> RunAsync(BenchContext ctx)
    {
        var n = ctx.Options.DensityVms;
        var runningGoal = Goal.AtLeast(50, "VMs");
        var memoryGoal = Goal.AtMost(150, "MB");
        if ((ctx.DaemonUnavailable() ?? ctx.QemuUnavailable()) is { } why)
        {
            return [ResultRow.Skipped(Name, "microVMs Running at once", why, runningGoal), ResultRow.Skipped(Name, "daemon RSS with them", why, memoryGoal)];
        }

        var state = ctx.NewStateDirectory("density");
        // Density measures how many TCG guests the daemon runs at once, so admission must not cap the vCPUs (the
        // default overcommit of 16 admits 32 one-vCPU VMs on a 2-CPU machine); memory admission stays as configured.
        await using var daemon = ctx.StartDaemon(state, "--cpu-overcommit-ratio", "1000");
        await daemon.WaitReadyAsync(TimeSpan.FromMinutes(2));
        using var client = HypercoreClient.Connect(daemon.GrpcAddress);
        var idleRss = daemon.RssBytes ?? 0;
        var maxRss = idleRss;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                maxRss = Math.Max(maxRss, daemon.RssBytes ?? 0);
                await Task.Delay(100, CancellationToken.None);
            }
        });

        BenchContext.Log($"density: creating {n} VMs at once");
        var names = Enumerable.Range(0, n).Select(i => $"d{i:D3}").ToList();
        var t0 = Stopwatch.GetTimestamp();
        var created = await Task.WhenAll(names.Select(name => client.CreateMicroVmAsync(new MicroVmTemplate { Name = name, Namespace = Namespace })));
        var createdIn = Stopwatch.GetElapsedTime(t0);
        var watches = created.ToDictionary(vm => vm.Spec.Id, vm => new ConsoleWatch(Path.Combine(state, "run", "qemu", vm.Spec.Uid, "console.log")));

        TimeSpan? allRunning = null, allReady = null;
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(Math.Max(5, n / 2.0));
        var maxRunning = 0;
        IReadOnlyList<MicroVM> last = [];
        while ((allRunning is null || allReady is null) && DateTime.UtcNow < deadline)
        {
            last = await client.ListMicroVmsAsync(Namespace);
            var running = last.Count(v => v.Status.Phase == MicroVmPhases.Running);
            maxRunning = Math.Max(maxRunning, running);
            if (allRunning is null && running == n)
            {
                allRunning = Stopwatch.GetElapsedTime(t0);
                BenchContext.Log($"density: all {n} Running after {Fmt.Seconds(allRunning.Value)}");
            }

            if (allReady is null && watches.Values.All(w => w.Check()))
            {
                allReady = Stopwatch.GetElapsedTime(t0);
                BenchContext.Log($"density: all {n} guests ready after {Fmt.Seconds(allReady.Value)}");
            }

            await Task.Delay(100);
        }

        var runningRss = daemon.RssBytes ?? 0;
        var runningPrivate = ProcFs.PrivateBytes(daemon.Pid) ?? 0;
        var failed = last.Where(v => v.Status.Phase is MicroVmPhases.Failed or MicroVmPhases.CrashLoopBackOff)
            .Select(v => $"{v.Spec.Id}: {v.Status.Conditions.FirstOrDefault(c => c.Type == "Ready")?.Message}").Take(3).ToList();

        BenchContext.Log($"density: deleting {n} VMs");
        var d0 = Stopwatch.GetTimestamp();
        await Task.WhenAll(names.Select(name => client.DeleteMicroVmAsync(name, Namespace)));
        var deleteDeadline = DateTime.UtcNow + TimeSpan.FromMinutes(5);
        while ((await client.ListMicroVmsAsync(Namespace)).Count > 0 && DateTime.UtcNow < deleteDeadline)
        {
            await Task.Delay(200);
        }

        var deletedIn = Stopwatch.GetElapsedTime(d0);
        var remaining = (await client.ListMicroVmsAsync(Namespace)).Count;
        var qemuLeft = ProcFs.ProcessesMentioning(Path.Combine(state, "run")).Count;
        await sampling.CancelAsync();
        await sampler;

        var reached = allRunning is null ? maxRunning : n;
        var notes = failed.Count > 0 ? $"; failures: {string.Join("; ", failed)}" : "";
        var rows = new List<ResultRow>
        {
            new(Name, "microVMs Running at once", reached, "VMs",
                $"{n} created by {n} concurrent gRPC Creates (all stored in {Fmt.Ms(createdIn)}); 1 vCPU, 128 MiB, TCG{notes}")
            {
                Goal = n >= 50 ? runningGoal : null,
                Reference = n >= 50 ? "" : $"goal ≥ 50 needs --density 50 (ran {n})",
            },
            allRunning is { } r
                ? new ResultRow(Name, $"time until all {n} Running", r.TotalSeconds, "s", "first Create sent → every record's phase Running (List polled every 100 ms)")
                : ResultRow.Skipped(Name, $"time until all {n} Running", $"only {maxRunning} of {n} reached Running"),
            allRunning is { } r2
                ? new ResultRow(Name, "launches per second", n / r2.TotalSeconds, "/s", "N ÷ time until all Running")
                : ResultRow.Skipped(Name, "launches per second", "not all reached Running"),
            allReady is { } g
                ? new ResultRow(Name, $"time until all {n} guests printed the ready line", g.TotalSeconds, "s", "first Create sent → HYPERCORE-GUEST-READY in every console log")
                : ResultRow.Skipped(Name, $"time until all {n} guests printed the ready line", "not every guest printed it in time"),
            new(Name, "daemon RSS with them", maxRss / 1048576.0, "MB",
                $"peak VmRSS of vistarad while starting and running {n} VMs; {Fmt.Number(runningRss / 1048576.0)} MB once all were up ({Fmt.Number(runningPrivate / 1048576.0)} MB of it private: RssAnon + RssShmem), {Fmt.Number(idleRss / 1048576.0)} MB before")
            {
                Goal = memoryGoal,
            },
            new(Name, "QEMU processes left after deleting all", qemuLeft, "",
                $"all {n} deleted in {Fmt.Seconds(deletedIn)} (graceful power-off); {remaining} records left")
            {
                Goal = new Goal("0", v => v == 0),
            },
        };
        return rows;
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using Hypercore.Benchmarks.Boot;
using Hypercore.Benchmarks.Processes;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;
using Hypercore.Client;
using Hypercore.Contracts.VmApi;
using Hypercore.Drivers.Vmm;

namespace Hypercore.Benchmarks.Density;

/// <summary>
/// Issue 15, goal 4: N real TCG microVMs (1 vCPU, 128 MiB) at once. Baseline: the same N QEMU command lines — the
/// argument vector the daemon's driver built for a warm-up VM, per VM only its directory, uid and name changed —
/// started by the benchmark itself, all at once. "Initialised", the same event on both sides: QEMU has answered a
/// QMP query-status. The benchmark asks the bare QEMUs itself; through the daemon it is the phase Running, which the
/// reconciler writes only after its own query-status was answered (seen on a Watch stream opened beforehand, so
/// the daemon side also carries the status write and its delivery). Then: the daemon's RSS with all of them, the
/// guests' ready lines (unless --density-no-boot), delete all, and what is left (processes, sockets, taps, files,
/// systemd scopes).
/// </summary>
public static class DensityBenchmark
{
    public const string Name = "Density";
    private const string Namespace = "density";
    private const string WarmUp = "dwarm";

    public static async Task<List<ResultRow>> RunAsync(BenchContext ctx)
    {
        var n = ctx.Options.DensityVms;
        var ratioGoal = Goal.AtMost(1.2, "×");
        var memoryGoal = Goal.AtMost(120, "MB");
        var deleteGoal = Goal.AtMost(15, "s");
        if ((ctx.DaemonUnavailable() ?? ctx.QemuUnavailable()) is { } why)
        {
            return
            [
                ResultRow.Skipped(Name, $"daemon / bare QEMU, all {n} initialised", why, ratioGoal),
                ResultRow.Skipped(Name, "daemon RSS with them", why, memoryGoal),
                ResultRow.Skipped(Name, "QEMU processes left after deleting all", why),
            ];
        }

        var state = ctx.NewStateDirectory("density");
        // Density measures how many TCG guests the daemon runs at once, so admission must not cap the vCPUs (the
        // default overcommit of 16 admits 32 one-vCPU VMs on a 2-CPU machine); memory admission stays as configured.
        string[] workers = ctx.Options.DensityWorkers is { } w ? ["--reconcile-workers", w.ToString(System.Globalization.CultureInfo.InvariantCulture)] : [];
        // The daemon runs as deployed: in a session of its own (DaemonProcess), where it sets its autogroup's priority
        // by default; --density-autogroup-nice N passes --autogroup-nice N (0: the daemon's weight left at the default).
        string[] nice = ctx.Options.DensityAutogroupNice is { } an ? ["--autogroup-nice", an.ToString(System.Globalization.CultureInfo.InvariantCulture)] : [];
        await using var daemon = ctx.StartDaemon(state, ["--cpu-overcommit-ratio", "1000", .. workers, .. nice]);
        await daemon.WaitReadyAsync(TimeSpan.FromMinutes(2));

        // Both sides at the same priority: the benchmark launches and asks the bare QEMUs itself, so its own session
        // gets the autogroup nice the daemon set for its own (else the baseline would be measured by a process with
        // 1/101 of the CPU while the daemon side is measured by one with more). Restored at the end.
        var ownNice = ProcFs.AutogroupNice(Environment.ProcessId);
        var daemonNice = ProcFs.AutogroupNice(daemon.Pid);
        if (ownNice is not null && daemonNice is not null && ownNice != daemonNice && ProcFs.SetOwnAutogroupNice(daemonNice.Value))
        {
            BenchContext.Log($"density: the daemon's autogroup is at nice {daemonNice}; the benchmark's own session set to the same (was {ownNice}) for both sides");
        }

        try
        {
            return await RunSidesAsync(ctx, n, state, daemon, ratioGoal);
        }
        finally
        {
            if (ownNice is not null && ownNice != daemonNice)
            {
                ProcFs.SetOwnAutogroupNice(ownNice.Value);
            }
        }
    }

    private static async Task<List<ResultRow>> RunSidesAsync(BenchContext ctx, int n, string state, DaemonProcess daemon, Goal ratioGoal)
    {
        using var client = HypercoreClient.Connect(daemon.GrpcAddress);
        var timeout = TimeSpan.FromSeconds(Math.Max(120, n * 3));

        // One Watch for the whole run: when each VM is reported Running (first time) and DELETED.
        var running = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        var deleted = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        var failed = new ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        using var watching = new CancellationTokenSource();
        var watch = Task.Run(async () =>
        {
            try
            {
                await foreach (var ev in client.WatchAsync(@namespace: Namespace, cancellationToken: watching.Token))
                {
                    var now = Stopwatch.GetTimestamp();
                    var id = ev.Microvm.Spec.Id;
                    if (ev.Type == "DELETED")
                    {
                        deleted.TryAdd(id, now);
                    }
                    else if (ev.Microvm.Status.Phase == MicroVmPhases.Running)
                    {
                        running.TryAdd(id, now);
                    }
                    else if (ev.Microvm.Status.Phase is MicroVmPhases.Failed or MicroVmPhases.CrashLoopBackOff)
                    {
                        failed[id] = ev.Microvm.Status.Conditions.FirstOrDefault(c => c.Type == "Ready")?.Message ?? ev.Microvm.Status.Phase;
                    }
                }
            }
            catch (Exception) when (watching.IsCancellationRequested)
            {
            }
        });

        // Warm-up through the daemon: its driver's argument vector for this spec, and the daemon's start path warmed.
        BenchContext.Log("density: warm-up VM (captures the driver's QEMU command line)");
        var warm = await client.CreateMicroVmAsync(new MicroVmTemplate { Name = WarmUp, Namespace = Namespace });
        await WaitAsync(() => running.ContainsKey(WarmUp) || failed.ContainsKey(WarmUp), TimeSpan.FromMinutes(3), "the warm-up VM to run");
        if (failed.TryGetValue(WarmUp, out var warmFailure))
        {
            throw new InvalidOperationException($"the warm-up VM failed: {warmFailure}");
        }

        var warmVm = await client.GetMicroVmAsync(WarmUp, Namespace);
        var warmDir = Path.Combine(state, "run", "qemu", warm.Spec.Uid);
        var template = ProcFs.CommandLine(warmVm.Status.Pid) ?? throw new InvalidOperationException($"QEMU pid {warmVm.Status.Pid} of the warm-up VM is gone");
        // A booted guest powers off at once; deleting one mid-boot would wait out the grace period.
        await new ConsoleWatch(Path.Combine(warmDir, "console.log")).WaitAsync(TimeSpan.FromMinutes(3));
        await client.DeleteMicroVmAsync(WarmUp, Namespace);
        await WaitAsync(() => deleted.ContainsKey(WarmUp), TimeSpan.FromMinutes(2), "the warm-up VM to be deleted");
        var argsText = string.Join(' ', template.Skip(1)).Replace(warmDir, "<vm-dir>", StringComparison.Ordinal).Replace(warm.Spec.Uid, "<uid>", StringComparison.Ordinal);

        var rounds = ctx.Options.DensityRounds;
        var bareRuns = new List<BareRun>();
        var daemonRuns = new List<DaemonRun>();
        for (var r = 0; r < rounds; r++)
        {
            // ABBA: bare, daemon, daemon, bare, … so that drift in the machine's load falls on both sides alike.
            var last = r == rounds - 1;
            if (r % 2 == 0)
            {
                bareRuns.Add(await BareAsync(r));
                daemonRuns.Add(await DaemonAsync(r, last));
            }
            else
            {
                daemonRuns.Add(await DaemonAsync(r, last));
                bareRuns.Add(await BareAsync(r));
            }
        }

        async Task<BareRun> BareAsync(int round)
        {
            BenchContext.Log($"density: round {round + 1}, {n} bare QEMUs at once");
            List<BareQemuFleet.Vm> bare;
            var bareRoot = ctx.NewDirectory("bare");
            var cpu0 = MachineCpu();
            var b0 = Stopwatch.GetTimestamp();
            await using (var fleet = new BareQemuFleet())
            {
                bare = await fleet.LaunchAsync(template, warmDir, warm.Spec.Uid, $"{Namespace}/{WarmUp}", bareRoot, n, b0, timeout);
            }

            var all = bare.Max(v => v.Answered);
            var cpu = MachineCpu() - cpu0;
            BenchContext.Log($"density: round {round + 1}, all {n} bare QEMUs answered QMP after {Fmt.Seconds(all)}");
            Directory.Delete(bareRoot, recursive: true);
            await Task.Delay(TimeSpan.FromSeconds(3)); // the killed QEMUs' memory is returned before the next side's turn
            return new BareRun(all, cpu, Stages(bare.Select(v => v.Spawned), bare.Select(v => (TimeSpan?)v.SocketSeen), bare.Select(v => (TimeSpan?)v.Answered)));
        }

        async Task<DaemonRun> DaemonAsync(int round, bool last)
        {
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

            BenchContext.Log($"density: round {round + 1}, {n} VMs through the daemon, created at once");
            var names = Enumerable.Range(0, n).Select(i => $"r{round}d{i:D3}").ToList();
            var daemonCpu0 = ProcFs.CpuTime(daemon.Pid) ?? TimeSpan.Zero;
            var machineCpu0 = MachineCpu();
            var t0 = Stopwatch.GetTimestamp();
            var sockets = new ConcurrentDictionary<string, TimeSpan>(StringComparer.Ordinal);
            var acks = new ConcurrentDictionary<string, TimeSpan>(StringComparer.Ordinal);
            var created = await Task.WhenAll(names.Select(async name =>
            {
                var vm = await client.CreateMicroVmAsync(new MicroVmTemplate { Name = name, Namespace = Namespace });
                acks[name] = Stopwatch.GetElapsedTime(t0);
                _ = WatchSocketAsync(Path.Combine(state, "run", "qemu", vm.Spec.Uid, "qmp.sock"), t0, timeout, at => sockets[name] = at);
                return vm;
            }));
            var createdIn = acks.Values.Max();
            await WaitAsync(() => names.All(running.ContainsKey) || names.Any(failed.ContainsKey), timeout, $"all {n} VMs to run");
            var all = Stopwatch.GetElapsedTime(t0);
            var daemonCpu = (ProcFs.CpuTime(daemon.Pid) ?? TimeSpan.Zero) - daemonCpu0;
            var machineCpu = MachineCpu() - machineCpu0;
            var allRunning = names.All(running.ContainsKey);
            if (allRunning)
            {
                all = names.Select(nm => Elapsed(t0, running[nm])).Max();
                BenchContext.Log($"density: round {round + 1}, all {n} Running after {Fmt.Seconds(all)}");
            }

            await Task.Delay(TimeSpan.FromSeconds(1));
            var runningRss = daemon.RssBytes ?? 0;
            var runningPrivate = ProcFs.PrivateBytes(daemon.Pid) ?? 0;

            TimeSpan? allReady = null;
            var boot = last && ctx.Options.DensityBootGuests && allRunning;
            if (boot)
            {
                var consoles = created.Select(vm => new ConsoleWatch(Path.Combine(state, "run", "qemu", vm.Spec.Uid, "console.log"))).ToList();
                var deadline = Stopwatch.GetTimestamp() + (long)(Math.Max(300, n * 6) * Stopwatch.Frequency);
                while (Stopwatch.GetTimestamp() < deadline)
                {
                    if (consoles.All(c => c.Check()))
                    {
                        allReady = Stopwatch.GetElapsedTime(t0);
                        BenchContext.Log($"density: all {n} guests ready after {Fmt.Seconds(allReady.Value)}");
                        break;
                    }

                    await Task.Delay(200);
                }
            }

            var beforeDeleteRss = daemon.RssBytes ?? 0;
            BenchContext.Log($"density: round {round + 1}, deleting {n} VMs");
            var deleteCpu0 = ProcFs.CpuTime(daemon.Pid) ?? TimeSpan.Zero;
            var d0 = Stopwatch.GetTimestamp();
            await Task.WhenAll(names.Select(name => client.DeleteMicroVmAsync(name, Namespace)));
            var deleteAcked = Stopwatch.GetElapsedTime(d0);
            await WaitAsync(() => names.All(deleted.ContainsKey), TimeSpan.FromMinutes(5), $"all {n} VMs to be deleted", throwOnTimeout: false);
            var allDeleted = names.All(deleted.ContainsKey);
            var deletedIn = allDeleted ? names.Select(nm => Elapsed(d0, deleted[nm])).Max() : Stopwatch.GetElapsedTime(d0);
            var deleteCpu = (ProcFs.CpuTime(daemon.Pid) ?? TimeSpan.Zero) - deleteCpu0;
            BenchContext.Log($"density: round {round + 1}, {names.Count(deleted.ContainsKey)} of {n} deleted after {Fmt.Seconds(deletedIn)}");
            var records = (await client.ListMicroVmsAsync(Namespace)).Count;
            var left = Leftovers.Find(state, [.. created.Select(vm => vm.Spec.Uid), warm.Spec.Uid]);
            await sampling.CancelAsync();
            await sampler;
            var stages = Stages(names.Select(nm => acks.GetValueOrDefault(nm)), names.Select(nm => sockets.TryGetValue(nm, out var s) ? s : (TimeSpan?)null),
                names.Select(nm => running.TryGetValue(nm, out var r) ? Elapsed(t0, r) : (TimeSpan?)null));
            var failures = names.Where(failed.ContainsKey).Take(3).Select(nm => $"{nm}: {failed[nm]}").ToList();
            return new DaemonRun(allRunning ? all : null, names.Count(running.ContainsKey), createdIn, stages, daemonCpu, machineCpu, maxRss, runningRss, runningPrivate,
                beforeDeleteRss, idleRss, boot ? allReady : null, boot, deletedIn, deleteAcked, deleteCpu, allDeleted, records, left, failures);
        }

        await watching.CancelAsync();
        await watch;
        return Rows(ctx, n, bareRuns, daemonRuns, argsText);
    }

    private sealed record BareRun(TimeSpan All, TimeSpan MachineCpu, string Stages);

    private sealed record DaemonRun(
        TimeSpan? All, int Running, TimeSpan CreatedIn, string Stages, TimeSpan DaemonCpu, TimeSpan MachineCpu, long MaxRss, long RunningRss, long RunningPrivate,
        long BeforeDeleteRss, long IdleRss, TimeSpan? AllReady, bool Booted, TimeSpan DeletedIn, TimeSpan DeleteAcked, TimeSpan DeleteCpu, bool AllDeleted, int Records,
        Leftovers Left, List<string> Failures);

    private static List<ResultRow> Rows(BenchContext ctx, int n, List<BareRun> bareRuns, List<DaemonRun> daemonRuns, string argsText)
    {
        var atGoalSize = n >= 100;
        Goal? IfFull(Goal g) => atGoalSize ? g : null;
        var goalNote = atGoalSize ? "" : $"goal needs --density 100 (ran {n})";
        var rounds = bareRuns.Count;
        var bareAll = BootOverhead.MedianOf(bareRuns.Select(b => b.All));
        var last = daemonRuns[^1];
        var failures = daemonRuns.SelectMany(d => d.Failures).ToList();
        var failureText = failures.Count > 0 ? $"; failures: {string.Join("; ", failures.Take(3))}" : "";
        var perRound = string.Join(", ", Enumerable.Range(0, rounds).Select(i =>
            $"{(daemonRuns[i].All is { } a ? Fmt.Seconds(a) : "—")} / {Fmt.Seconds(bareRuns[i].All)}"));
        var rows = new List<ResultRow>();
        if (daemonRuns.All(d => d.All is not null))
        {
            var daemonAll = BootOverhead.MedianOf(daemonRuns.Select(d => d.All!.Value));
            rows.Add(new ResultRow(Name, $"daemon / bare QEMU, all {n} initialised", daemonAll / bareAll, "×",
                $"time until the last of {n} VMs answered QMP query-status: through the daemon (phase Running on a Watch) ÷ bare (the benchmark asks each QEMU); " +
                $"{(rounds == 1 ? "bare first, then the daemon, in one run" : $"medians of {rounds} rounds in ABBA order (daemon / bare per round: {perRound})")}; 1 vCPU, 128 MiB, TCG{failureText}")
            {
                Goal = IfFull(Goal.AtMost(1.2, "×")),
                Reference = atGoalSize ? $"bare {Fmt.Seconds(bareAll)}" : goalNote,
            });
            rows.Add(new ResultRow(Name, $"time until all {n} initialised (daemon)", daemonAll.TotalSeconds, "s",
                $"{n} concurrent gRPC Creates (all acknowledged after {Fmt.Ms(last.CreatedIn)}) → the last one reported Running; last round, per VM, median / last: {last.Stages}")
            {
                Reference = $"bare {Fmt.Seconds(bareAll)}",
            });
        }
        else
        {
            rows.Add(ResultRow.Skipped(Name, $"daemon / bare QEMU, all {n} initialised",
                $"only {string.Join(", ", daemonRuns.Select(d => d.Running))} of {n} reached Running{failureText}", IfFull(Goal.AtMost(1.2, "×"))));
            rows.Add(new ResultRow(Name, $"VMs initialised through the daemon (of {n})", last.Running, "",
                $"last round; of those, per VM, median / last: {last.Stages}"));
        }

        rows.Add(new ResultRow(Name, $"time until all {n} initialised (bare QEMU)", bareAll.TotalSeconds, "s",
            $"{n} qemu-system-x86_64 started by the benchmark at once → the last one answered query-status; last round, per VM, median / last: {bareRuns[^1].Stages}; " +
            $"qemu-system-x86_64 {argsText}"));
        var daemonCpu = TimeSpan.FromTicks(daemonRuns.Sum(d => d.DaemonCpu.Ticks) / rounds);
        rows.Add(new ResultRow(Name, "CPU until all initialised, daemon / bare", bareRuns.Sum(b => b.MachineCpu.TotalSeconds) / daemonRuns.Sum(d => d.MachineCpu.TotalSeconds) is var inverse && inverse > 0 ? 1 / inverse : double.NaN, "×",
            $"whole machine (/proc/stat, all processes, other load included) over all rounds: {Fmt.Seconds(TimeSpan.FromTicks(daemonRuns.Sum(d => d.MachineCpu.Ticks)))} through the daemon, " +
            $"{Fmt.Seconds(TimeSpan.FromTicks(bareRuns.Sum(b => b.MachineCpu.Ticks)))} bare; vistarad itself used {Fmt.Seconds(daemonCpu)} per round ({Fmt.Ms(daemonCpu / n)} per VM)"));
        rows.Add(new ResultRow(Name, $"daemon RSS with {n} VMs", daemonRuns.Max(d => d.MaxRss) / 1048576.0, "MB",
            $"peak VmRSS of vistarad while starting and running {n} VMs; last round: {Fmt.Number(last.RunningRss / 1048576.0)} MB once all were up " +
            $"({Fmt.Number(last.RunningPrivate / 1048576.0)} MB of it private: RssAnon + RssShmem), {Fmt.Number(last.BeforeDeleteRss / 1048576.0)} MB before the delete, {Fmt.Number(last.IdleRss / 1048576.0)} MB before the Creates")
        {
            Goal = IfFull(Goal.AtMost(120, "MB")),
            Reference = goalNote,
        });
        if (ctx.Options.DensityBootGuests)
        {
            rows.Add(last.AllReady is { } g
                ? new ResultRow(Name, $"time until all {n} guests printed the ready line", g.TotalSeconds, "s", "first Create sent → HYPERCORE-GUEST-READY in every console log (last round; TCG: the guests share the CPUs)")
                : ResultRow.Skipped(Name, $"time until all {n} guests printed the ready line", "not every guest printed it in time"));
        }

        rows.Add(new ResultRow(Name, $"delete of all {n}", last.DeletedIn.TotalSeconds, "s",
            $"{n} concurrent gRPC Deletes (acknowledged after {Fmt.Ms(last.DeleteAcked)}) → the last DELETED event, last round; " +
            (last.Booted ? "guests booted, so each powers off on the ACPI button" : "guests still booting (not waited for), so each gets the stop grace period before QMP quit") +
            $"; vistarad used {Fmt.Seconds(last.DeleteCpu)} of CPU; {last.Records} records left{(last.AllDeleted ? "" : "; NOT all deleted within 5 min")}" +
            (rounds > 1 ? $"; every round: {string.Join(", ", daemonRuns.Select(d => Fmt.Seconds(d.DeletedIn)))}" : ""))
        {
            Goal = IfFull(Goal.AtMost(15, "s")),
            Reference = goalNote,
        });
        rows.Add(new ResultRow(Name, "QEMU processes left after deleting all", daemonRuns.Sum(d => d.Left.Processes), "", "processes whose command line names the daemon's run directory, after each round")
        {
            Goal = new Goal("0", v => v == 0),
        });
        rows.Add(new ResultRow(Name, "sockets, taps, files and scopes left after deleting all", daemonRuns.Sum(d => d.Left.Total - d.Left.Processes), "", last.Left.Describe())
        {
            Goal = new Goal("0", v => v == 0),
        });
        return rows;
    }

    /// <summary>Ack (or spawn) → QMP socket → initialised, median and the last VM's, from per-VM elapsed times.</summary>
    private static string Stages(IEnumerable<TimeSpan> starts, IEnumerable<TimeSpan?> sockets, IEnumerable<TimeSpan?> done)
    {
        var s = starts.ToList();
        var k = sockets.ToList();
        var d = done.ToList();
        var toSocket = Enumerable.Range(0, s.Count).Where(i => k[i] is not null).Select(i => k[i]!.Value - s[i]).ToList();
        var toDone = Enumerable.Range(0, s.Count).Where(i => k[i] is not null && d[i] is not null).Select(i => d[i]!.Value - k[i]!.Value).ToList();
        static string Of(List<TimeSpan> l) => l.Count == 0 ? "—" : $"{Fmt.Ms(BootOverhead.MedianOf(l))} / {Fmt.Ms(l.Max())}";
        var last = Enumerable.Range(0, s.Count).Where(i => k[i] is not null).Select(i => k[i]!.Value).DefaultIfEmpty().Max();
        return $"launch/ack → QMP socket exists {Of(toSocket)}, socket → initialised {Of(toDone)}; last socket at {Fmt.Seconds(last)}";
    }

    private static TimeSpan Elapsed(long from, long to) => Stopwatch.GetElapsedTime(from, to);

    private static async Task WatchSocketAsync(string socket, long t0, TimeSpan timeout, Action<TimeSpan> seen)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (File.Exists(socket))
            {
                seen(Stopwatch.GetElapsedTime(t0));
                return;
            }

            await Task.Delay(QmpProbe.PollInterval);
        }
    }

    private static async Task WaitAsync(Func<bool> done, TimeSpan timeout, string what, bool throwOnTimeout = true)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (!done())
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                if (throwOnTimeout)
                {
                    throw new TimeoutException($"timed out after {timeout.TotalSeconds:0} s waiting for {what}");
                }

                return;
            }

            await Task.Delay(10);
        }
    }

    /// <summary>CPU time of the whole machine so far (user + nice + system + irq + softirq + steal, /proc/stat).</summary>
    private static TimeSpan MachineCpu()
    {
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        long Field(int i) => long.Parse(fields[i], System.Globalization.CultureInfo.InvariantCulture);
        var ticks = Field(1) + Field(2) + Field(3) + Field(6) + Field(7) + Field(8);
        return TimeSpan.FromSeconds(ticks / 100.0);
    }
}

/// <summary>What a deleted VM may leave behind, by kind.</summary>
public sealed record Leftovers(int Processes, int Directories, int Sockets, int Taps, int Scopes, bool Systemd)
{
    public int Total => Processes + Directories + Sockets + Taps + Scopes;

    public string Describe() =>
        $"{Directories} VM directories and {Sockets} sockets under the daemon's run directory, {Taps} taps named after the VMs' uids, " +
        (Systemd ? $"{Scopes} hypercore-<uid>.scope cgroups" : "no systemd on this host (hypervisors are not started in scopes)");

    public static Leftovers Find(string state, IReadOnlyList<string> uids)
    {
        var run = Path.Combine(state, "run");
        var vmDirs = Path.Combine(run, "qemu");
        var directories = Directory.Exists(vmDirs) ? Directory.GetDirectories(vmDirs).Length : 0;
        var sockets = Directory.Exists(run) ? Directory.EnumerateFiles(run, "*.sock", SearchOption.AllDirectories).Count() : 0;
        var taps = uids.Count(uid => Directory.Exists($"/sys/class/net/{TapDevices.TapName(uid, 0)}"));
        var systemd = Directory.Exists("/run/systemd/system");
        var scopes = uids.Count(uid => Directory.Exists($"/sys/fs/cgroup/{SystemdScope.Slice}/hypercore-{uid}.scope"));
        return new Leftovers(ProcFs.RunProcessesMentioning(run).Count, directories, sockets, taps, scopes, systemd);
    }
}

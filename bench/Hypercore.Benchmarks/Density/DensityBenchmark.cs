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
        var atGoalSize = n >= 100;
        Goal? IfFull(Goal g) => atGoalSize ? g : null;
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
        await using var daemon = ctx.StartDaemon(state, "--cpu-overcommit-ratio", "1000");
        await daemon.WaitReadyAsync(TimeSpan.FromMinutes(2));
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

        // Baseline: the same command lines, started by the benchmark, all at once.
        BenchContext.Log($"density: baseline, {n} bare QEMUs at once");
        List<BareQemuFleet.Vm> bare;
        var bareRoot = ctx.NewDirectory("bare");
        var bareCpu0 = MachineCpu();
        var b0 = Stopwatch.GetTimestamp();
        await using (var fleet = new BareQemuFleet())
        {
            bare = await fleet.LaunchAsync(template, warmDir, warm.Spec.Uid, $"{Namespace}/{WarmUp}", bareRoot, n, b0, timeout);
        }

        var bareAll = bare.Max(v => v.Answered);
        var bareCpu = MachineCpu() - bareCpu0;
        BenchContext.Log($"density: baseline, all {n} answered QMP after {Fmt.Seconds(bareAll)}");
        Directory.Delete(bareRoot, recursive: true);
        await Task.Delay(TimeSpan.FromSeconds(3)); // the killed QEMUs' memory is returned before the daemon's turn

        // Through the daemon: N concurrent Creates.
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

        BenchContext.Log($"density: {n} VMs through the daemon, created at once");
        var names = Enumerable.Range(0, n).Select(i => $"d{i:D3}").ToList();
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
        await WaitAsync(() => names.All(running.ContainsKey) || !failed.IsEmpty, timeout, $"all {n} VMs to run");
        var daemonAll = Stopwatch.GetElapsedTime(t0);
        var daemonCpu = (ProcFs.CpuTime(daemon.Pid) ?? TimeSpan.Zero) - daemonCpu0;
        var machineCpu = MachineCpu() - machineCpu0;
        var allRunning = names.All(running.ContainsKey);
        if (allRunning)
        {
            daemonAll = names.Select(nm => Elapsed(t0, running[nm])).Max();
            BenchContext.Log($"density: all {n} Running after {Fmt.Seconds(daemonAll)} (bare {Fmt.Seconds(bareAll)})");
        }

        await Task.Delay(TimeSpan.FromSeconds(1));
        var runningRss = daemon.RssBytes ?? 0;
        var runningPrivate = ProcFs.PrivateBytes(daemon.Pid) ?? 0;

        TimeSpan? allReady = null;
        if (ctx.Options.DensityBootGuests && allRunning)
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
        BenchContext.Log($"density: deleting {n} VMs");
        var deleteCpu0 = ProcFs.CpuTime(daemon.Pid) ?? TimeSpan.Zero;
        var d0 = Stopwatch.GetTimestamp();
        await Task.WhenAll(names.Select(name => client.DeleteMicroVmAsync(name, Namespace)));
        var deleteAcked = Stopwatch.GetElapsedTime(d0);
        await WaitAsync(() => names.All(deleted.ContainsKey), TimeSpan.FromMinutes(5), $"all {n} VMs to be deleted", throwOnTimeout: false);
        var allDeleted = names.All(deleted.ContainsKey);
        var deletedIn = allDeleted ? names.Select(nm => Elapsed(d0, deleted[nm])).Max() : Stopwatch.GetElapsedTime(d0);
        var deleteCpu = (ProcFs.CpuTime(daemon.Pid) ?? TimeSpan.Zero) - deleteCpu0;
        BenchContext.Log($"density: {deleted.Count(kv => names.Contains(kv.Key))} of {n} deleted after {Fmt.Seconds(deletedIn)}");

        var records = (await client.ListMicroVmsAsync(Namespace)).Count;
        var left = Leftovers.Find(state, [.. created.Select(vm => vm.Spec.Uid), warm.Spec.Uid]);
        await sampling.CancelAsync();
        await sampler;
        await watching.CancelAsync();
        await watch;

        var failures = !failed.IsEmpty ? $"; failures: {string.Join("; ", failed.Take(3).Select(kv => $"{kv.Key}: {kv.Value}"))}" : "";
        var goalNote = atGoalSize ? "" : $"goal needs --density 100 (ran {n})";
        var daemonStages = Stages(names.Select(nm => acks.GetValueOrDefault(nm)), names.Select(nm => sockets.TryGetValue(nm, out var s) ? s : (TimeSpan?)null),
            names.Select(nm => running.TryGetValue(nm, out var r) ? Elapsed(t0, r) : (TimeSpan?)null));
        var bareStages = Stages(bare.Select(v => v.Spawned), bare.Select(v => (TimeSpan?)v.SocketSeen), bare.Select(v => (TimeSpan?)v.Answered));
        var rows = new List<ResultRow>();
        if (allRunning)
        {
            rows.Add(new ResultRow(Name, $"daemon / bare QEMU, all {n} initialised", daemonAll / bareAll, "×",
                $"time until the last of {n} VMs answered QMP query-status: through the daemon (phase Running on a Watch) ÷ bare (the benchmark asks each QEMU); " +
                $"bare first, then the daemon, in one run; 1 vCPU, 128 MiB, TCG{failures}")
            {
                Goal = IfFull(ratioGoal),
                Reference = atGoalSize ? $"bare {Fmt.Seconds(bareAll)}" : goalNote,
            });
            rows.Add(new ResultRow(Name, $"time until all {n} initialised (daemon)", daemonAll.TotalSeconds, "s",
                $"{n} concurrent gRPC Creates (all acknowledged after {Fmt.Ms(createdIn)}) → the last one reported Running; per VM, median / last: {daemonStages}")
            {
                Reference = $"bare {Fmt.Seconds(bareAll)}",
            });
        }
        else
        {
            rows.Add(ResultRow.Skipped(Name, $"daemon / bare QEMU, all {n} initialised", $"only {running.Count(kv => names.Contains(kv.Key))} of {n} reached Running{failures}", IfFull(ratioGoal)));
        }

        rows.Add(new ResultRow(Name, $"time until all {n} initialised (bare QEMU)", bareAll.TotalSeconds, "s",
            $"{n} qemu-system-x86_64 started by the benchmark at once → the last one answered query-status; per VM, median / last: {bareStages}; " +
            $"qemu-system-x86_64 {argsText}"));
        rows.Add(new ResultRow(Name, "CPU until all initialised, daemon / bare", bareCpu.TotalSeconds > 0 ? machineCpu / bareCpu : double.NaN, "×",
            $"whole machine (/proc/stat, all processes; other load included): {Fmt.Seconds(machineCpu)} through the daemon, {Fmt.Seconds(bareCpu)} bare; " +
            $"vistarad itself used {Fmt.Seconds(daemonCpu)} ({Fmt.Ms(daemonCpu / n)} per VM)"));
        rows.Add(new ResultRow(Name, $"daemon RSS with {n} VMs", maxRss / 1048576.0, "MB",
            $"peak VmRSS of vistarad while starting and running {n} VMs; {Fmt.Number(runningRss / 1048576.0)} MB once all were up " +
            $"({Fmt.Number(runningPrivate / 1048576.0)} MB of it private: RssAnon + RssShmem), {Fmt.Number(beforeDeleteRss / 1048576.0)} MB before the delete, {Fmt.Number(idleRss / 1048576.0)} MB before the Creates")
        {
            Goal = IfFull(memoryGoal),
            Reference = goalNote,
        });
        if (ctx.Options.DensityBootGuests)
        {
            rows.Add(allReady is { } g
                ? new ResultRow(Name, $"time until all {n} guests printed the ready line", g.TotalSeconds, "s", "first Create sent → HYPERCORE-GUEST-READY in every console log (TCG: the guests share the CPUs)")
                : ResultRow.Skipped(Name, $"time until all {n} guests printed the ready line", "not every guest printed it in time"));
        }

        rows.Add(new ResultRow(Name, $"delete of all {n}", deletedIn.TotalSeconds, "s",
            $"{n} concurrent gRPC Deletes (acknowledged after {Fmt.Ms(deleteAcked)}) → the last DELETED event; " +
            (ctx.Options.DensityBootGuests ? "guests booted, so each powers off on the ACPI button" : "guests still booting (--density-no-boot): each gets the stop grace period before QMP quit") +
            $"; vistarad used {Fmt.Seconds(deleteCpu)} of CPU; {records} records left{(allDeleted ? "" : $"; NOT all deleted within 5 min")}")
        {
            Goal = IfFull(deleteGoal),
            Reference = goalNote,
        });
        rows.Add(new ResultRow(Name, "QEMU processes left after deleting all", left.Processes, "", $"processes whose command line names the daemon's run directory")
        {
            Goal = new Goal("0", v => v == 0),
        });
        rows.Add(new ResultRow(Name, "sockets, taps, files and scopes left after deleting all", left.Total - left.Processes, "", left.Describe())
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
        return new Leftovers(ProcFs.ProcessesMentioning(run).Count, directories, sockets, taps, scopes, systemd);
    }
}

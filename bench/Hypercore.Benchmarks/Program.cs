using System.Diagnostics;
using System.Runtime.InteropServices;
using Hypercore.Benchmarks.Api;
using Hypercore.Benchmarks.Boot;
using Hypercore.Benchmarks.ColdStart;
using Hypercore.Benchmarks.Density;
using Hypercore.Benchmarks.Machine;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;
using Hypercore.Benchmarks.Scale;
using Hypercore.Benchmarks.Snapshot;

// Hidden mode: the API benchmark's clients in a process of their own (see LoadGenerator).
if (args.Length > 0 && args[0] == LoadGenerator.Flag)
{
    return await LoadGenerator.MainAsync(args);
}

// Hidden mode: the watch benchmark's streams in a process of their own (issue 15, watch fan-out).
if (args.Length > 0 && args[0] == Hypercore.Benchmarks.Watch.WatchClients.Flag)
{
    return await Hypercore.Benchmarks.Watch.WatchClients.MainAsync(args);
}

BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (HelpRequestedException)
{
    Console.Out.WriteLine(BenchOptions.Usage);
    return 0;
}
catch (Exception ex) when (ex is ArgumentException or FormatException)
{
    Console.Error.WriteLine("bench: " + ex.Message);
    Console.Error.WriteLine(BenchOptions.Usage);
    return 2;
}

if (options.Child is { } child)
{
    if (DaemonRuntime.MustRestart(child))
    {
        return await DaemonRuntime.RestartAsync(args); // a child run by hand: under the daemon's settings too
    }

    var result = child switch
    {
        ApiThroughput.ChildKind => await ApiThroughput.RunChildAsync(options, options.ChildSize, reconciler: true),
        ApiThroughput.ChildKindNoReconciler => await ApiThroughput.RunChildAsync(options, options.ChildSize, reconciler: false),
        ApiDaemonThroughput.ChildKind => await ApiDaemonThroughput.RunChildAsync(options, options.ChildSize), // issue 15 goal 2 on the shipped daemon
        ApiNodeThroughput.ChildKind => await ApiNodeThroughput.RunChildAsync(options, options.ChildSize), // issue 15 goal 2's Running load on the AOT benchmark node
        ApiDaemonThroughput.InProcessChildKind => await ApiThroughput.RunChildAsync(options, options.ChildSize, reconciler: true, state: ApiDaemonThroughput.State),
        ReconcileScale.ChildKind => await ReconcileScale.RunChildAsync(options, options.ChildSize),
        ReconcileScale.ResyncChildKind => await ReconcileScale.RunResyncChildAsync(options, options.ChildSize), // issue 15: resync in a fresh process
        Hypercore.Benchmarks.Pipeline.PipelineBenchmark.ChildKind => await Hypercore.Benchmarks.Pipeline.PipelineBenchmark.RunChildAsync(options, options.ChildSize), // pipeline (issue 15)
        Hypercore.Benchmarks.Watch.WatchFanOut.ChildKind => await Hypercore.Benchmarks.Watch.WatchFanOut.RunChildAsync(options, options.ChildSize), // watch fan-out (issue 15)
        DaemonRuntime.ChildKind => DaemonRuntime.RunChild(),
        _ => throw new ArgumentException($"unknown child benchmark {child}"),
    };
    DaemonRuntime.Report(result); // what it ran under: ChildRun compares it with the daemon's settings
    ChildRun.Report(result);
    return 0;
}

var machine = await MachineInfo.ReadAsync(options.QemuBinary);
var loadBefore = MachineInfo.LoadAverage();
var validity = RunValidity.Decide(loadBefore, machine.Cores);
var stopwatch = Stopwatch.StartNew();
var rows = new List<ResultRow>();
var failures = 0;
var context = new BenchContext(options);
var cleaned = 0;
async Task CleanupAsync()
{
    if (Interlocked.Exchange(ref cleaned, 1) == 0)
    {
        await context.DisposeAsync();
    }
}

// Ctrl+C or SIGTERM: stop every daemon and QEMU of this run before exiting.
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
void OnSignal(PosixSignalContext signal)
{
    signal.Cancel = true;
    BenchContext.Log($"{signal.Signal}: cleaning up");
    CleanupAsync().GetAwaiter().GetResult();
    Environment.Exit(130);
}

BenchContext.Log($"bench: {options.Mode} run in {context.WorkDirectory}");
BenchContext.Log($"bench: machine {machine.CpuModel}, {machine.Cores} cores, {machine.MemoryKb / 1048576.0:0.0} GiB, kernel {machine.Kernel}; load average {loadBefore?.ToString() ?? "unknown"} at the start");
BenchContext.Log($"bench: this run is {validity.Reason}");
(string Name, Func<BenchContext, Task<List<ResultRow>>> Run)[] benchmarks =
[
    ("coldstart", ColdStartBenchmark.RunAsync),
    ("api", ApiThroughput.RunAsync),
    ("scale", ReconcileScale.RunAsync),
    ("boot", BootOverhead.RunAsync),
    ("images", Hypercore.Benchmarks.Images.ImagePullBenchmark.RunAsync), // images (issue 11)
    ("snapshot", SnapshotRestoreBenchmark.RunAsync), // snapshots
    ("watch", Hypercore.Benchmarks.Watch.WatchFanOut.RunAsync), // watch fan-out (issue 15)
    ("pipeline", Hypercore.Benchmarks.Pipeline.PipelineBenchmark.RunAsync), // daemon pipeline (issue 15)
    // Last: its 100 guests keep both cores busy for minutes after their delete (1-minute load ~100 at the 2026-11-30
    // 15:51 run, whose Watch rows right after it cost 446 µs of CPU per event instead of 52).
    ("density", DensityBenchmark.RunAsync),
];
try
{
    foreach (var (name, run) in benchmarks.Where(b => options.Only.Contains(b.Name)))
    {
        BenchContext.Log($"{name}: load average {MachineInfo.LoadAverage()?.ToString() ?? "unknown"} at its start");
        try
        {
            rows.AddRange(await run(context));
        }
        catch (Exception ex)
        {
            failures++;
            BenchContext.Log($"{name}: FAILED: {ex}");
            rows.Add(ResultRow.Skipped(name, "(benchmark failed)", ex.Message));
        }
    }
}
finally
{
    await CleanupAsync();
}

var loadAfter = MachineInfo.LoadAverage();
Console.Out.WriteLine();
Console.Out.WriteLine($"Machine: {machine.CpuModel}, {machine.Cores} cores, {machine.MemoryKb / 1048576.0:0.0} GiB, kernel {machine.Kernel}, {machine.DotnetVersion}, {machine.QemuVersion}");
Console.Out.WriteLine($"Load average: {loadBefore?.ToString() ?? "unknown"} at the start, {loadAfter?.ToString() ?? "unknown"} at the end");
Console.Out.WriteLine($"Run: {validity.Reason}");
Console.Out.WriteLine();
Console.Out.Write(ReportWriter.ConsoleTable(rows));

if (options.DocsPath is { } docs)
{
    var notes = options.NotesPath is { } path && File.Exists(path) ? await File.ReadAllTextAsync(path) : null;
    await File.WriteAllTextAsync(docs, ReportWriter.Markdown(rows, machine, loadBefore, loadAfter, validity, options, stopwatch.Elapsed, notes));
    Console.Out.WriteLine($"\nwrote {docs}");
}

return failures == 0 ? 0 : 1;

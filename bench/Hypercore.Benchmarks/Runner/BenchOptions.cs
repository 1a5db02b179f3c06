using System.Globalization;

namespace Hypercore.Benchmarks.Runner;

public enum BenchMode
{
    /// <summary>The figures for docs/benchmarks.md.</summary>
    Full,

    /// <summary>Smaller counts (3 density VMs, shorter API runs); still rewrites the docs unless told not to.</summary>
    Quick,

    /// <summary>Tiny counts, no docs rewrite: proves the runner works (CI).</summary>
    Smoke,
}

/// <summary>Command line of the runner. Sizes follow the mode unless a flag sets them.</summary>
public sealed class BenchOptions
{
    public static readonly string[] AllBenchmarks = ["boot", "api", "scale", "density", "coldstart", "images", "snapshot", "watch", "pipeline"];

    public BenchMode Mode { get; private set; } = BenchMode.Full;

    public HashSet<string> Only { get; private set; } = [.. AllBenchmarks];

    /// <summary>vistarad (apphost) or vistarad.dll.</summary>
    public string? DaemonPath { get; private set; }

    /// <summary>
    /// hypercore-bench-node (bench/Hypercore.BenchNode: vistarad's composition with the no-op driver; bench/run.sh publishes it
    /// Native AOT) for the Running load in a process of its own; null: those rows are left out.
    /// </summary>
    public string? BenchNodePath { get; private set; }

    /// <summary>Directory holding vmlinuz and initrd.img of the guest image.</summary>
    public string ImageDirectory { get; private set; } = "/var/lib/hypercore/images/default";

    public string QemuBinary { get; private set; } = "qemu-system-x86_64";

    /// <summary>The vis CLI for its cold-start rows (part of "coldstart"); null: those rows are skipped.</summary>
    public string? VisPath { get; private set; }

    /// <summary>
    /// issue 15 (perfstart): the JIT build of vis, the baseline of the vis cold-start rows when --vis is the Native AOT
    /// one; null: no baseline column.
    /// </summary>
    public string? VisJitPath { get; private set; }

    /// <summary>Where docs/benchmarks.md is written; null: not written.</summary>
    public string? DocsPath { get; private set; }

    /// <summary>Hand-written notes included in the docs after the table.</summary>
    public string? NotesPath { get; private set; }

    /// <summary>Scratch directory for state dirs, databases and bare QEMU runs; removed at the end.</summary>
    public string? WorkDirectory { get; private set; }

    public int BootRuns { get; private set; }

    public int[] ApiClients { get; private set; } = [];

    public TimeSpan ApiDuration { get; private set; }

    /// <summary>
    /// Runs of each separate-process API row (vistarad, the benchmark node), each a fresh server; the row is the run with
    /// the median ratio (issue 15, twenty-third pass). 3 by default, 1 with --quick and --smoke.
    /// </summary>
    public int ApiRounds { get; private set; }

    public int[] ScaleRecords { get; private set; } = [];

    /// <summary>
    /// Timed resync passes per size, each a fresh process on the same seeded records; the rows are the pass with the
    /// median time (issue 15 goal 6, s38). 3 by default, 1 with --quick and --smoke.
    /// </summary>
    public int ScaleRounds { get; private set; }

    public int DensityVms { get; private set; }

    /// <summary>Density (issue 15): wait for every guest's ready line before deleting (off: delete right after all are initialised).</summary>
    public bool DensityBootGuests { get; private set; } = true;

    /// <summary>Density: bare/daemon pairs, in ABBA order; the ratio is of the medians.</summary>
    public int DensityRounds { get; private set; } = 1;

    /// <summary>Density: the daemon's --reconcile-workers, for A/B runs; null for its default.</summary>
    public int? DensityWorkers { get; private set; }

    /// <summary>Density: the daemon's --autogroup-nice (0: left at the default weight), for A/B runs; null for its default.</summary>
    public int? DensityAutogroupNice { get; private set; }

    public int ColdStarts { get; private set; }

    /// <summary>Concurrent Watch streams of the watch fan-out benchmark (issue 15).</summary>
    public int WatchStreams { get; private set; }

    /// <summary>Sequential Creates of the daemon pipeline benchmark (issue 15).</summary>
    public int PipelineCreates { get; private set; }

    /// <summary>Internal: run one in-process benchmark in this (child) process and print its result as JSON.</summary>
    public string? Child { get; private set; }

    /// <summary>Internal: the child's size (clients or records).</summary>
    public int ChildSize { get; private set; }

    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var o = new BenchOptions();
        int? boot = null, density = null, cold = null;
        int[]? clients = null, records = null;
        double? seconds = null;
        int? apiRounds = null;
        int? scaleRounds = null;
        int? watchStreams = null;
        var noDocs = false;
        string? docs = null;
        for (var i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--quick": o.Mode = BenchMode.Quick; break;
                case "--smoke": o.Mode = BenchMode.Smoke; break;
                case "--only":
                    var only = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    var unknown = only.Except(AllBenchmarks).ToList();
                    if (unknown.Count > 0)
                    {
                        throw new ArgumentException($"--only: unknown benchmark {string.Join(", ", unknown)}; known: {string.Join(", ", AllBenchmarks)}");
                    }

                    o.Only = [.. only];
                    break;
                case "--daemon": o.DaemonPath = Path.GetFullPath(Value()); break;
                case "--bench-node": o.BenchNodePath = Path.GetFullPath(Value()); break;
                case "--vis": o.VisPath = Path.GetFullPath(Value()); break;
                case "--vis-jit": o.VisJitPath = Path.GetFullPath(Value()); break;
                case "--image": o.ImageDirectory = Path.GetFullPath(Value()); break;
                case "--qemu-bin": o.QemuBinary = Value(); break;
                case "--docs": docs = Path.GetFullPath(Value()); break;
                case "--notes": o.NotesPath = Path.GetFullPath(Value()); break;
                case "--no-docs": noDocs = true; break;
                case "--work-dir": o.WorkDirectory = Path.GetFullPath(Value()); break;
                case "--boot-runs": boot = PositiveInt(args[i], Value()); break;
                case "--api-clients": clients = IntList(args[i], Value()); break;
                case "--api-seconds": seconds = double.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--api-rounds": apiRounds = PositiveInt(args[i], Value()); break;
                case "--scale-records": records = IntList(args[i], Value()); break;
                case "--scale-rounds": scaleRounds = PositiveInt(args[i], Value()); break;
                case "--density": density = PositiveInt(args[i], Value()); break;
                case "--density-no-boot": o.DensityBootGuests = false; break;
                case "--density-rounds": o.DensityRounds = PositiveInt(args[i], Value()); break;
                case "--density-workers": o.DensityWorkers = PositiveInt(args[i], Value()); break;
                case "--density-autogroup-nice": o.DensityAutogroupNice = int.Parse(Value(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--cold-starts": cold = PositiveInt(args[i], Value()); break;
                case "--watch-streams": watchStreams = PositiveInt(args[i], Value()); break;
                case "--child": o.Child = Value(); break;
                case "--child-size": o.ChildSize = PositiveInt(args[i], Value()); break;
                case "-h" or "--help": throw new HelpRequestedException();
                default: throw new ArgumentException($"unknown argument {args[i]}");
            }
        }

        var (b, c, s, r, d, k) = o.Mode switch
        {
            BenchMode.Smoke => (1, new[] { 1, 4 }, 0.5, new[] { 200 }, 1, 1),
            BenchMode.Quick => (5, new[] { 1, 16, 32, 64 }, 2.0, new[] { 1_000, 10_000 }, 3, 5),
            _ => (7, new[] { 1, 16, 32, 64 }, 5.0, new[] { 1_000, 10_000, 100_000 }, 100, 5), // 100,000 records, 100 VMs: issue 15
        };
        o.BootRuns = boot ?? b;
        o.ApiClients = clients ?? c;
        o.ApiDuration = TimeSpan.FromSeconds(seconds ?? s);
        o.ApiRounds = apiRounds ?? (o.Mode == BenchMode.Full ? 3 : 1);
        o.ScaleRecords = records ?? r;
        o.ScaleRounds = scaleRounds ?? (o.Mode == BenchMode.Full ? 3 : 1);
        o.DensityVms = density ?? d;
        o.ColdStarts = cold ?? k;
        o.WatchStreams = watchStreams ?? (o.Mode == BenchMode.Smoke ? 20 : 1000);
        o.PipelineCreates = o.Mode == BenchMode.Smoke ? 5 : 50;
        o.DocsPath = noDocs || o.Mode == BenchMode.Smoke ? null : docs;
        return o;
    }

    public const string Usage =
        "usage: Hypercore.Benchmarks [--quick|--smoke] [--only boot,api,scale,density,coldstart,images,snapshot,watch,pipeline] [--daemon path/to/vistarad] [--bench-node path/to/hypercore-bench-node] [--vis path/to/vis] [--vis-jit path/to/jit/vis]\n" +
        "         [--image dir] [--qemu-bin path] [--docs docs/benchmarks.md] [--notes bench/NOTES.md] [--no-docs] [--work-dir dir]\n" +
        "         [--boot-runs N] [--api-clients 1,16,32,64] [--api-seconds S] [--api-rounds N] [--scale-records 1000,10000] [--scale-rounds N] [--density N] [--density-no-boot] [--density-rounds N] [--density-workers N] [--density-autogroup-nice N] [--cold-starts N]\n" +
        "         [--watch-streams N]";

    private static int PositiveInt(string flag, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new ArgumentException($"{flag}: \"{value}\" is not a positive integer");

    private static int[] IntList(string flag, string value) =>
        value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => PositiveInt(flag, v)).ToArray();
}

public sealed class HelpRequestedException : Exception
{
    public HelpRequestedException()
        : base("help")
    {
    }
}

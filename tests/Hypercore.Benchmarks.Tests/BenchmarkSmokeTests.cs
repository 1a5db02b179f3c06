using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;

namespace Hypercore.Benchmarks.Tests;

/// <summary>
/// The runner end to end with tiny sizes (--smoke): every benchmark runs against the real daemon process and the
/// in-process API, prints its rows, writes no docs, and leaves no process or file behind. Boot and density need
/// QEMU and the guest image (scripts/setup.sh); without them their rows must say "skipped", not fail.
/// </summary>
[NonParallelizable]
public class BenchmarkSmokeTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(10);

    private string _scratch = null!;

    [SetUp]
    public void SetUp() => _scratch = Directory.CreateTempSubdirectory("hcb-smoke-").FullName;

    [TearDown]
    public void TearDown()
    {
        // Whatever happened, nothing of this run may survive it.
        foreach (var pid in ProcessesMentioning(_scratch))
        {
            try
            {
                Process.GetProcessById(pid).Kill(entireProcessTree: true);
            }
            catch (ArgumentException)
            {
            }
            catch (InvalidOperationException)
            {
            }
        }

        Directory.Delete(_scratch, recursive: true);
    }

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "HypercoreController.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }

    private static string Configuration =>
        typeof(BenchmarkSmokeTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";

    private static bool GuestImagePresent =>
        File.Exists("/var/lib/hypercore/images/default/vmlinuz") && File.Exists("/var/lib/hypercore/images/default/initrd.img");

    [Test]
    public async Task Runner_Smoke_EveryBenchmarkReportsAndNothingIsLeftBehind()
    {
        var root = RepoRoot();
        var runner = Path.Combine(root, "bench", "Hypercore.Benchmarks", "bin", Configuration, "net10.0", "Hypercore.Benchmarks.dll");
        var daemon = Path.Combine(root, "src", "Hypercore.Daemon", "bin", Configuration, "net10.0", "vistarad");
        File.Exists(runner).Should().BeTrue($"the runner is built with the tests ({runner})");
        File.Exists(daemon).Should().BeTrue($"the daemon is built with the tests ({daemon})");
        var vis = Path.Combine(root, "src", "Hypercore.Cli", "bin", Configuration, "net10.0", "vis");
        File.Exists(vis).Should().BeTrue($"vis is built with the tests ({vis})");
        // The benchmark node as built (JIT): the smoke run does not publish it Native AOT, and its rows say "JIT".
        var node = Path.Combine(root, "bench", "Hypercore.BenchNode", "bin", Configuration, "net10.0", "hypercore-bench-node");
        File.Exists(node).Should().BeTrue($"the benchmark node is built with the tests ({node})");
        var work = Path.Combine(_scratch, "w");
        var docs = Path.Combine(_scratch, "benchmarks.md");

        var (exit, stdout, stderr) = await RunAsync("dotnet", runner, "--smoke", "--daemon", daemon, "--bench-node", node, "--vis", vis, "--work-dir", work, "--docs", docs);

        exit.Should().Be(0, $"the smoke run must succeed; stderr:\n{stderr}\nstdout:\n{stdout}");
        stdout.Should().Contain("benchmark").And.Contain("verdict").And.Contain("Load average:");
        stdout.Should().MatchRegex(@"Run: (valid|NOT VALID): 1-minute load average [0-9.]+ at the start", "every run says whether its numbers may be quoted");
        stdout.Should().NotContain("(benchmark failed)");
        Row(stdout, "Cold start", "process start → first answered gRPC call").Should().MatchRegex(@"[0-9,.]+ ms");
        Row(stdout, "Cold start", "idle RSS").Should().MatchRegex(@"[0-9,.]+ MB");
        Row(stdout, "vis cold start", "vis --version: process start → exit").Should().MatchRegex(@"[0-9,.]+ ms");
        Row(stdout, "vis cold start", "vis list (running daemon): process start → exit").Should().MatchRegex(@"[0-9,.]+ ms");
        Row(stdout, "API", "durable Creates/s, 4 client(s)").Should().MatchRegex(@"[1-9][0-9,.]* /s\s+[0-9.]+ × baseline [1-9][0-9,.]* /s");
        Row(stdout, "API", "empty unary calls/s (baseline), 4 client(s)").Should().MatchRegex(@"[1-9][0-9,.]* /s");
        // Issue 15 (sixteenth pass): every ratio is against the mean of a baseline before the Creates and one after them.
        Row(stdout, "API", "Creates ÷ empty-call baseline, 4 client(s)").Should().MatchRegex(@"[0-9.]+ ×\s+baseline [1-9][0-9,.]* /s: before [1-9][0-9,.]*, after [1-9][0-9,.]*");
        Row(stdout, "API", "server CPU per Create, 4 client(s)").Should().MatchRegex(@"[1-9][0-9,.]* µs");
        Row(stdout, "API", "Create p99 inside the server's request span, 4 client(s)").Should().MatchRegex(@"[0-9][0-9,.]* ms");
        // Issue 15 goal 2 (creates3): the same load against the vistarad process, and the in-process node with that load.
        foreach (var where in (string[])["vistarad process", "in-process node"])
        {
            Row(stdout, "API", $"Creates ÷ empty-call baseline, 4 client(s), {where}").Should().MatchRegex(@"[0-9.]+ ×\s+baseline [1-9][0-9,.]* /s: before [1-9][0-9,.]*, after [1-9][0-9,.]*");
            Row(stdout, "API", $"server CPU per Create, 4 client(s), {where}").Should().MatchRegex(@"[1-9][0-9,.]* µs");
            Row(stdout, "API", $"Create latency p99, 4 client(s), {where}").Should().MatchRegex(@"[0-9][0-9,.]* ms");
        }

        // Issue 15 goal 2's Running load against the benchmark node, a process of its own (JIT here; AOT in bench/run.sh).
        Row(stdout, "API", "Creates ÷ empty-call baseline, 4 client(s), JIT benchmark node, Running load").Should().MatchRegex(@"[0-9.]+ ×\s+baseline [1-9][0-9,.]* /s: before [1-9][0-9,.]*, after [1-9][0-9,.]*");
        Row(stdout, "API", "server CPU per Create, 4 client(s), JIT benchmark node, Running load").Should().MatchRegex(@"[1-9][0-9,.]* µs");
        Row(stdout, "API", "Create latency p99, 4 client(s), JIT benchmark node, Running load").Should().MatchRegex(@"[0-9][0-9,.]* ms");

        Row(stdout, "Reconcile scale", "resync pass, 200 records").Should().MatchRegex(@"[0-9.]+ s");
        if (GuestImagePresent)
        {
            Row(stdout, "Boot overhead", "daemon / bare QEMU boot ratio").Should().MatchRegex(@"[0-9.]+ ×\s+bare [1-9][0-9,.]* ms");
            Row(stdout, "Boot overhead", "daemon / bare QEMU boot ratio, medians").Should().MatchRegex(@"[0-9.]+ ×\s+bare [1-9][0-9,.]* ms");
            Row(stdout, "Density", "QEMU processes left after deleting all").Should().MatchRegex(@"\b0\s+pass");
        }
        else
        {
            Row(stdout, "Boot overhead", "daemon / bare QEMU boot ratio").Should().Contain("skipped");
        }

        // snapshots: a ratio with an image that has the hypercore.count hook, "skipped" (saying why) without
        Row(stdout, "Snapshot restore", "cold boot / restore time ratio").Should().MatchRegex(@"[0-9.]+ ×|skipped");

        // Issue 15 (perf): watch fan-out, the daemon pipeline without a hypervisor, the resync's CPU and memory.
        Row(stdout, "Watch fan-out", "spec change → all 20 streams, p99").Should().MatchRegex(@"[0-9,.]+ ms");
        Row(stdout, "Watch fan-out", "daemon RSS growth per open stream").Should().MatchRegex(@"-?[0-9,.]+ KB");
        Row(stdout, "Daemon pipeline", "gRPC Create → hypervisor launch (no-op driver)").Should().MatchRegex(@"[0-9,.]+ ms");
        Row(stdout, "Reconcile scale", "CPU of the resync pass, 200 records").Should().MatchRegex(@"[0-9.]+ s");

        File.Exists(docs).Should().BeFalse("--smoke never rewrites the docs");
        ProcessesMentioning(work).Should().BeEmpty("the runner stops every daemon and QEMU it started");
    }

    /// <summary>
    /// Goal 2's own row (the in-process node at 64 clients) is read from the median of --api-rounds runs, like the
    /// separate-process rows: a single 5 s window moved by more than the goal's margin between runs (bench/NOTES.md, s30).
    /// </summary>
    [Test]
    public async Task Runner_ApiGoalLevel_RunsItsChildOncePerRound()
    {
        var runner = Path.Combine(RepoRoot(), "bench", "Hypercore.Benchmarks", "bin", Configuration, "net10.0", "Hypercore.Benchmarks.dll");
        var work = Path.Combine(_scratch, "w");

        var (exit, stdout, stderr) = await RunAsync("dotnet", runner, "--smoke", "--only", "api", "--api-clients", "64", "--api-rounds", "2", "--work-dir", work);

        exit.Should().Be(0, $"stderr:\n{stderr}");
        // Each run is a fresh node on an empty directory: the second must not meet the first one's records (whose ids
        // its Creates would repeat, AlreadyExists).
        stderr.Should().MatchRegex(@"api: 64 client\(s\), run 1 of 2: [0-9.]+ ×, [1-9][0-9]* creates, 0 errors")
            .And.MatchRegex(@"api: 64 client\(s\), run 2 of 2: [0-9.]+ ×, [1-9][0-9]* creates, 0 errors");
        Row(stdout, "API", "Creates ÷ empty-call baseline, 64 client(s)").Should().MatchRegex(@"[0-9.]+ ×\s+baseline [1-9][0-9,.]* /s: before [1-9][0-9,.]*, after [1-9][0-9,.]*");
        ProcessesMentioning(_scratch).Should().BeEmpty("every child and server of the rounds has exited");
    }

    /// <summary>
    /// Goal 6's rows are the median of --scale-rounds resync passes (issue 15, s38), each a fresh process on the records
    /// the one seeding left: every pass must find them all and reconcile them.
    /// </summary>
    [Test]
    public async Task Runner_Scale_RunsOneResyncPassPerRound_OnTheSameRecords()
    {
        var runner = Path.Combine(RepoRoot(), "bench", "Hypercore.Benchmarks", "bin", Configuration, "net10.0", "Hypercore.Benchmarks.dll");
        var work = Path.Combine(_scratch, "w");

        var (exit, stdout, stderr) = await RunAsync("dotnet", runner, "--smoke", "--only", "scale", "--scale-rounds", "2", "--work-dir", work);

        exit.Should().Be(0, $"stderr:\n{stderr}");
        stderr.Should().MatchRegex(@"scale: 200 records, resync 1 of 2: [0-9.]+ s, [0-9.]+ s CPU, [1-9][0-9.]* MB")
            .And.MatchRegex(@"scale: 200 records, resync 2 of 2: [0-9.]+ s, [0-9.]+ s CPU, [1-9][0-9.]* MB");
        // Of two passes the row is the slower (an even count never rounds a time down), as printed in the log.
        var passes = Regex.Matches(stderr, @"resync [12] of 2: ([0-9.]+) s,").Select(m => m.Groups[1].Value).ToList();
        passes.Should().HaveCount(2);
        var slower = passes.OrderBy(p => double.Parse(p, CultureInfo.InvariantCulture)).Last();
        Row(stdout, "Reconcile scale", "resync pass, 200 records").Should().MatchRegex($@"\s{Regex.Escape(slower)} s\b");
        ProcessesMentioning(_scratch).Should().BeEmpty("every child of the rounds has exited");
    }

    [Test]
    public async Task Runner_UnknownBenchmark_ExitsWithUsage()
    {
        var runner = Path.Combine(RepoRoot(), "bench", "Hypercore.Benchmarks", "bin", Configuration, "net10.0", "Hypercore.Benchmarks.dll");

        var (exit, _, stderr) = await RunAsync("dotnet", runner, "--only", "warp-drive");

        exit.Should().Be(2);
        stderr.Should().Contain("unknown benchmark warp-drive").And.Contain("usage:");
    }

    /// <summary>The table line of one metric (whitespace-separated columns as the runner prints them).</summary>
    private static string Row(string stdout, string benchmark, string metric) =>
        stdout.Split('\n').FirstOrDefault(l => l.StartsWith(benchmark + " ", StringComparison.Ordinal) && l.Contains("  " + metric + "  ", StringComparison.Ordinal))
        ?? throw new AssertionException($"no row \"{benchmark} / {metric}\" in:\n{stdout}");

    private static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(Timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new AssertionException($"the runner did not finish within {Timeout.TotalMinutes} min; stderr so far:\n{await stderr}");
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    private static List<int> ProcessesMentioning(string path)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                if (cmdline.Contains(path, StringComparison.Ordinal) && !IsZombie(pid))
                {
                    found.Add(pid);
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return found;
    }

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (IOException)
        {
            return true;
        }
    }
}

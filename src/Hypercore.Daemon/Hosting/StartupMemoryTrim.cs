using Microsoft.Extensions.Logging;

namespace Hypercore.Daemon.Hosting;

/// <summary>
/// One full, compacting, decommitting collection shortly after the daemon is ready, then never again.
/// </summary>
/// <remarks>
/// Building the app (DI, gRPC method binding, OpenTelemetry's metric points, the store's first queries) allocates
/// ~30 MB that is garbage once the daemon answers. The GC sizes its first-generation budget from the CPU's last-level
/// cache (hundreds of MB on server CPUs), so an idle daemon may not collect for a long time, and every page of that
/// start-up garbage stays resident: in the Native AOT daemon it was 30 of its 46 MB of private memory (issue 15,
/// bench/NOTES.md). The NativeAOT runtime reads no DOTNET_GC* variables, so the budget cannot be lowered from outside,
/// and a smaller budget would also tax the API under load. One aggressive collection after the start burst returns the
/// pages to the kernel at the cost of a few milliseconds of CPU on a thread-pool thread, off every request path.
/// </remarks>
internal sealed partial class StartupMemoryTrim : IDisposable
{
    /// <summary>After ready: long enough for the start burst (first calls, the reconciler's first pass) to end.</summary>
    public static readonly TimeSpan Delay = TimeSpan.FromSeconds(1);

    private readonly Action _collect;
    private readonly ILogger _log;
    private readonly ITimer _timer;
    private int _ran;

    internal StartupMemoryTrim(TimeProvider time, ILogger log, Action collect)
    {
        _collect = collect;
        _log = log;
        // One shot: no period, so the timer cannot fire twice.
        _timer = time.CreateTimer(static state => ((StartupMemoryTrim)state!).Run(), this, Delay, Timeout.InfiniteTimeSpan);
    }

    /// <summary>How many times the collection ran (0 or 1).</summary>
    internal int Runs => Volatile.Read(ref _ran);

    /// <summary>Schedules the trim <see cref="Delay"/> after now; disposing it before then cancels it.</summary>
    public static StartupMemoryTrim Schedule(TimeProvider time, ILogger log) => new(time, log, Collect);

    private static void Collect() => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    private void Run()
    {
        if (Interlocked.Exchange(ref _ran, 1) != 0)
        {
            return;
        }

        var rssBefore = ResidentMb();
        var cpuBefore = Environment.CpuUsage.TotalTime;
        _collect();
        var cpu = Environment.CpuUsage.TotalTime - cpuBefore;
        LogTrimmed(_log, cpu.TotalMilliseconds, rssBefore, ResidentMb(), GC.GetGCMemoryInfo().HeapSizeBytes / 1048576.0);
    }

    public void Dispose() => _timer.Dispose();

    private static double ResidentMb()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.TryParse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), out var kb) ? kb / 1024.0 : 0;
                }
            }
        }
        catch (IOException)
        {
            // not Linux procfs: logged as 0
        }

        return 0;
    }

    // CPU is the whole process's during the collection (other threads' too), so an upper bound of the trim's cost.
    [LoggerMessage(9030, LogLevel.Information,
        "after-start memory trim: full compacting GC, {CpuMs:0.0} ms process CPU; RSS {BeforeMb:0.0} → {AfterMb:0.0} MB, managed heap {HeapMb:0.0} MB")]
    private static partial void LogTrimmed(ILogger log, double cpuMs, double beforeMb, double afterMb, double heapMb);
}

using Microsoft.Extensions.Logging;

namespace Hypercore.Daemon.Hosting;

/// <summary>
/// One full, compacting, decommitting collection once the daemon is idle after ready, then never again.
/// </summary>
/// <remarks>
/// Building the app (DI, gRPC method binding, OpenTelemetry's metric points, the store's first queries) allocates
/// ~30 MB that is garbage once the daemon answers. The GC sizes its first-generation budget from the CPU's last-level
/// cache (hundreds of MB on server CPUs), so an idle daemon may not collect for a long time, and every page of that
/// start-up garbage stays resident: in the Native AOT daemon it was 30 of its 46 MB of private memory (issue 15,
/// bench/NOTES.md). The NativeAOT runtime reads no DOTNET_GC* variables; the AOT build caps the budget at 6 MB from
/// inside the binary (GCGen0MaxBudget in Hypercore.Daemon.csproj), which bounds growth under load but still leaves the
/// start's last budget of garbage resident. One aggressive collection after the start burst returns the pages to the
/// kernel for ~40 ms of CPU on the timer's thread, only once the daemon has been idle for a second.
/// </remarks>
internal sealed partial class StartupMemoryTrim : IDisposable
{
    /// <summary>How often the trim checks whether the daemon has gone idle after ready.</summary>
    public static readonly TimeSpan Delay = TimeSpan.FromSeconds(1);

    /// <summary>Idle: the process used at most this share of one CPU over the last <see cref="Delay"/>.</summary>
    public const double IdleCpuShare = 0.1;

    /// <summary>Checks before giving up: a daemon busy for its first minute (a resync of many records) is not trimmed.</summary>
    public const int MaxChecks = 60;

    private readonly Action _collect;
    private readonly Func<TimeSpan> _processCpu;
    private readonly ILogger _log;
    private readonly ITimer _timer;
    private readonly Lock _gate = new();
    private TimeSpan _lastCpu;
    private int _checks;
    private bool _done;
    private int _ran;

    internal StartupMemoryTrim(TimeProvider time, ILogger log, Action collect, Func<TimeSpan> processCpu)
    {
        _collect = collect;
        _processCpu = processCpu;
        _log = log;
        _lastCpu = processCpu();
        _timer = time.CreateTimer(static state => ((StartupMemoryTrim)state!).Check(), this, Delay, Delay);
    }

    /// <summary>How many times the collection ran (0 or 1).</summary>
    internal int Runs => Volatile.Read(ref _ran);

    /// <summary>Schedules the trim for the first <see cref="Delay"/> after now that the daemon is idle; disposing it cancels it.</summary>
    public static StartupMemoryTrim Schedule(TimeProvider time, ILogger log) => new(time, log, Collect, static () => Environment.CpuUsage.TotalTime);

    internal static void Collect() => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    private void Check()
    {
        lock (_gate)
        {
            if (_done)
            {
                return;
            }

            // A blocking compacting collection pauses every thread: never while the daemon is working (its start
            // burst, a resync, calls), only once it has been idle for a whole interval.
            var cpu = _processCpu();
            var busy = (cpu - _lastCpu) > Delay * IdleCpuShare;
            _lastCpu = cpu;
            if (busy)
            {
                if (++_checks >= MaxChecks)
                {
                    _done = true;
                    _timer.Dispose();
                    LogNotIdle(_log, MaxChecks);
                }

                return;
            }

            _done = true;
            _timer.Dispose();
        }

        Interlocked.Increment(ref _ran);
        var rssBefore = ProcessMemory.Read().RssMb;
        var cpuBefore = _processCpu();
        _collect();
        var spent = _processCpu() - cpuBefore;
        LogTrimmed(_log, spent.TotalMilliseconds, rssBefore, ProcessMemory.Read().RssMb, GC.GetGCMemoryInfo().HeapSizeBytes / 1048576.0);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _done = true;
            _timer.Dispose();
        }
    }

    // CPU is the whole process's during the collection (other threads' too), so an upper bound of the trim's cost.
    [LoggerMessage(9030, LogLevel.Information,
        "after-start memory trim: full compacting GC, {CpuMs:0.0} ms process CPU; RSS {BeforeMb:0.0} → {AfterMb:0.0} MB, managed heap {HeapMb:0.0} MB")]
    private static partial void LogTrimmed(ILogger log, double cpuMs, double beforeMb, double afterMb, double heapMb);

    [LoggerMessage(9031, LogLevel.Debug, "after-start memory trim skipped: the daemon was busy at each of {Checks} checks after ready")]
    private static partial void LogNotIdle(ILogger log, int checks);
}

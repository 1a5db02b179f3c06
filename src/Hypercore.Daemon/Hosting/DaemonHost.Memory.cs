using System.Runtime;
using Microsoft.Extensions.Logging;

namespace Hypercore.Daemon.Hosting;

public static partial class DaemonHost
{
    /// <summary>
    /// One line at ready with what the start cost: CPU, the managed heap and what the GC holds committed, threads and
    /// the process's resident memory, so a start-up regression (or a heap kept large by an early burst of
    /// allocations) shows in the log, not only in a benchmark (issue 15).
    /// </summary>
    private static void LogStartCost(ILogger log)
    {
        if (!log.IsEnabled(LogLevel.Information))
        {
            return;
        }

        var cpu = Environment.CpuUsage;
        var gc = GC.GetGCMemoryInfo();
        var memory = ProcessMemory.Read();
        LogStarted(log, (cpu.UserTime + cpu.PrivilegedTime).TotalMilliseconds, Mb(GC.GetTotalAllocatedBytes()), Mb(gc.HeapSizeBytes), Mb(gc.TotalCommittedBytes),
            Mb(gc.FragmentedBytes), GC.CollectionCount(0), Environment.ProcessorCount, System.Diagnostics.Process.GetCurrentProcess().Threads.Count,
            memory.RssMb, memory.AnonMb, GCSettings.IsServerGC);
        LogPrefault(log, ImagePrefault.Describe());

        static double Mb(long bytes) => bytes / 1048576.0;
    }

    [LoggerMessage(9020, LogLevel.Information,
        "start cost: {CpuMs:0} ms CPU; {AllocatedMb:0.0} MB allocated, managed heap {HeapMb:0.0} MB, GC committed {CommittedMb:0.0} MB ({FragmentedMb:0.0} MB free in it), {Gen0} gen0 GCs, {Cpus} CPUs; {Threads} threads; RSS {RssMb:0.0} MB ({AnonMb:0.0} MB anonymous); server GC {ServerGc}")]
    private static partial void LogStarted(ILogger log, double cpuMs, double allocatedMb, double heapMb, double committedMb, double fragmentedMb, int gen0, int cpus, int threads, double rssMb, double anonMb, bool serverGc);

    [LoggerMessage(9021, LogLevel.Information, "start cost: image prefault {Prefault}")]
    private static partial void LogPrefault(ILogger log, string prefault);
}

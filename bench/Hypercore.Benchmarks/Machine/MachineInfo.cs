using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Hypercore.Benchmarks.Machine;

/// <summary>What the numbers were measured on. Load averages are read at the start and the end of the run.</summary>
public sealed record MachineInfo(
    string CpuModel, int Cores, long MemoryKb, string Kernel, string Os, string DotnetVersion, string QemuVersion, string Date)
{
    public static async Task<MachineInfo> ReadAsync(string qemuBinary)
    {
        var cpuinfo = TryRead("/proc/cpuinfo");
        var kernel = TryRead("/proc/sys/kernel/osrelease").Trim();
        var os = TryRead("/etc/os-release").Split('\n').FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?[12..].Trim('"') ?? RuntimeInformation.OSDescription;
        var qemu = await FirstLineAsync(qemuBinary, "--version");
        return new MachineInfo(CpuModelOf(cpuinfo), CoresOf(cpuinfo, Environment.ProcessorCount), MemInfoKb(TryRead("/proc/meminfo"), "MemTotal"), kernel, os,
            $".NET {Environment.Version} ({RuntimeInformation.FrameworkDescription})", qemu,
            DateTimeOffset.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture));
    }

    /// <summary>The first "model name" of /proc/cpuinfo text, or "unknown" (some architectures print none).</summary>
    public static string CpuModelOf(string cpuinfo) =>
        cpuinfo.Split('\n').FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal) && l.Contains(':', StringComparison.Ordinal))?.Split(':', 2)[1].Trim() is { Length: > 0 } model
            ? model
            : "unknown";

    /// <summary>
    /// Logical CPUs of the machine: the "processor" entries of /proc/cpuinfo. The load average counts runnable tasks
    /// machine-wide, so it is compared with the machine's CPUs, not with this process's affinity; the fallback is used
    /// when the text has no entries.
    /// </summary>
    public static int CoresOf(string cpuinfo, int fallback)
    {
        var n = cpuinfo.Split('\n').Count(l => l.StartsWith("processor", StringComparison.Ordinal) && l.Contains(':', StringComparison.Ordinal));
        return n > 0 ? n : fallback;
    }

    /// <summary>The current load average from /proc/loadavg, or null when it cannot be read.</summary>
    public static LoadAverage? LoadAverage() => Machine.LoadAverage.Parse(TryRead("/proc/loadavg"));

    /// <summary>One /proc/meminfo value in kB (0 when absent).</summary>
    public static long MemInfoKb(string key) => MemInfoKb(TryRead("/proc/meminfo"), key);

    public static long MemInfoKb(string meminfo, string key)
    {
        var line = meminfo.Split('\n').FirstOrDefault(l => l.StartsWith(key + ":", StringComparison.Ordinal));
        return line is not null && long.TryParse(line.Split(':', 2)[1].Trim().Split(' ')[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kb) ? kb : 0;
    }

    private static string TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return "";
        }
        catch (UnauthorizedAccessException)
        {
            return "";
        }
    }

    private static async Task<string> FirstLineAsync(string file, string args)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var output = await p.StandardOutput.ReadToEndAsync();
            await p.WaitForExitAsync();
            return output.Split('\n')[0].Trim();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return $"not runnable ({ex.Message})";
        }
    }
}

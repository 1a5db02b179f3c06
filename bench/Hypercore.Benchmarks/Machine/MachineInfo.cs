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
        var model = cpuinfo.Split('\n').FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        var mem = MemInfoKb("MemTotal");
        var kernel = TryRead("/proc/sys/kernel/osrelease").Trim();
        var os = TryRead("/etc/os-release").Split('\n').FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?[12..].Trim('"') ?? RuntimeInformation.OSDescription;
        var qemu = await FirstLineAsync(qemuBinary, "--version");
        return new MachineInfo(model, Environment.ProcessorCount, mem, kernel, os,
            $".NET {Environment.Version} ({RuntimeInformation.FrameworkDescription})", qemu,
            DateTimeOffset.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture));
    }

    /// <summary>"1.23 0.98 0.50" from /proc/loadavg (1, 5, 15 minutes).</summary>
    public static string LoadAverage()
    {
        var parts = TryRead("/proc/loadavg").Split(' ');
        return parts.Length >= 3 ? $"{parts[0]} {parts[1]} {parts[2]}" : "unknown";
    }

    public static long MemInfoKb(string key)
    {
        var line = TryRead("/proc/meminfo").Split('\n').FirstOrDefault(l => l.StartsWith(key + ":", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line.Split(':', 2)[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
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

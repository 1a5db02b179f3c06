using System.Globalization;
using System.Runtime.InteropServices;

namespace Hypercore.Benchmarks.Processes;

/// <summary>/proc readings and signals, by pid only.</summary>
public static partial class ProcFs
{
    public const int SigKill = 9;
    public const int SigTerm = 15;

    /// <summary>VmRSS of a process in bytes, or null when it is gone.</summary>
    public static long? RssBytes(int pid) => StatusBytes(pid, "VmRSS");

    /// <summary>
    /// The part of RSS the process owns: anonymous memory (heaps, stacks) plus shared-memory mappings (the runtime's
    /// double-mapped JIT code); without the file-backed pages of mapped assemblies, which other .NET processes share
    /// and the kernel can drop and re-read.
    /// </summary>
    public static long? PrivateBytes(int pid) => StatusBytes(pid, "RssAnon") + StatusBytes(pid, "RssShmem");

    private static long? StatusBytes(int pid, string key)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith(key + ":", StringComparison.Ordinal))
                {
                    return long.Parse(line[(key.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }

    /// <summary>User + system CPU time a process has used so far (10 ms resolution), or null when it is gone.</summary>
    public static TimeSpan? CpuTime(int pid)
    {
        try
        {
            return CpuTimeOfStat(File.ReadAllText($"/proc/{pid}/stat"));
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>utime + stime of /proc/&lt;pid&gt;/stat text, at the kernel's USER_HZ of 100.</summary>
    public static TimeSpan CpuTimeOfStat(string stat)
    {
        // The command name may hold spaces and parentheses: the fields start after the last ')'.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // After the command name: state is field 3, utime field 14, stime field 15 (1-based, proc(5)).
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds(ticks / 100.0);
    }

    /// <summary>The argument vector of a process, or null when it is gone.</summary>
    public static string[]? CommandLine(int pid)
    {
        try
        {
            var raw = File.ReadAllText($"/proc/{pid}/cmdline");
            return raw.Length == 0 ? null : raw.TrimEnd('\0').Split('\0');
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Processes whose command line mentions <paramref name="path"/> (the run's own scratch directory).</summary>
    public static List<int> ProcessesMentioning(string path)
    {
        var found = new List<int>();
        var self = Environment.ProcessId;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid == self)
            {
                continue;
            }

            if (CommandLine(pid) is { } argv && argv.Any(a => a.Contains(path, StringComparison.Ordinal)))
            {
                found.Add(pid);
            }
        }

        return found;
    }

    /// <summary>
    /// Of <see cref="ProcessesMentioning"/>, those a run may kill: what the run starts (vistarad, hypervisors) or any
    /// descendant of this process. A sampler, a profiler or a shell that merely names the work directory is not the
    /// run's, and killing it (as the reaper did) broke measurements made alongside a run.
    /// </summary>
    public static List<int> RunProcessesMentioning(string path)
    {
        var self = Environment.ProcessId;
        return ProcessesMentioning(path).Where(pid => IsRunProgram(CommandLine(pid)) || DescendsFrom(pid, self)).ToList();
    }

    /// <summary>Programs a benchmark run starts and may leave behind: the daemon and the hypervisors.</summary>
    public static bool IsRunProgram(string[]? argv)
    {
        if (argv is not { Length: > 0 })
        {
            return false;
        }

        var name = Path.GetFileName(argv[0]);
        return name == "vistarad" || name.StartsWith("qemu-", StringComparison.Ordinal) || name is "firecracker" or "jailer" or "cloud-hypervisor" ||
            (name == "dotnet" && argv.Length > 1 && Path.GetFileName(argv[1]) == "vistarad.dll");
    }

    /// <summary>True when <paramref name="ancestor"/> is on <paramref name="pid"/>'s parent chain.</summary>
    public static bool DescendsFrom(int pid, int ancestor)
    {
        for (var (current, hops) = (pid, 0); current > 1 && hops < 64; hops++)
        {
            current = ParentOf(current);
            if (current == ancestor)
            {
                return true;
            }
        }

        return false;
    }

    private static int ParentOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var ppid) ? ppid : 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentOutOfRangeException)
        {
            return 0;
        }
    }

    /// <summary>The nice value of a process's scheduling autogroup ("/autogroup-42 nice -10"), or null.</summary>
    public static int? AutogroupNice(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/autogroup").Trim();
            return int.TryParse(text.AsSpan(text.LastIndexOf(' ') + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var nice) ? nice : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Sets this process's autogroup nice (its whole session's); false when not allowed.</summary>
    public static bool SetOwnAutogroupNice(int nice)
    {
        try
        {
            File.WriteAllText("/proc/self/autogroup", nice.ToString(CultureInfo.InvariantCulture));
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    public static bool IsAlive(int pid) => Kill(pid, 0) == 0 && !IsZombie(pid);

    public static void Signal(int pid, int signal) => _ = Kill(pid, signal);

    /// <summary>SIGKILLs each pid and waits (up to <paramref name="timeout"/>) until all are gone.</summary>
    public static async Task KillAllAsync(IEnumerable<int> pids, TimeSpan timeout)
    {
        var list = pids.ToList();
        foreach (var pid in list)
        {
            Signal(pid, SigKill);
        }

        var deadline = DateTime.UtcNow + timeout;
        while (list.Any(IsAlive) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }
    }

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length && stat[close + 2] == 'Z';
        }
        catch (IOException)
        {
            return true;
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}

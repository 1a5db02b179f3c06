using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Hypercore.Testing;

/// <summary>Facts about host processes from /proc, and killing what a test started.</summary>
public static class ProcFs
{
    /// <summary>
    /// Every inotify watch of this process: one "inotify wd:" line per watched directory in the fdinfo of its inotify
    /// descriptors. Tests count them before and after a host starts to show it registers no file watcher.
    /// </summary>
    public static int InotifyWatches()
    {
        var watches = 0;
        foreach (var fd in Directory.GetFiles("/proc/self/fdinfo"))
        {
            try
            {
                watches += File.ReadAllLines(fd).Count(l => l.StartsWith("inotify wd:", StringComparison.Ordinal));
            }
            catch (IOException)
            {
                // a descriptor closed since the listing (the listing's own, among others)
            }
        }

        return watches;
    }

    /// <summary>
    /// This process's open file descriptors whose link in /proc/self/fd satisfies <paramref name="target"/> (a path, or e.g.
    /// "anon_inode:[pidfd]"); a descriptor closed while listed is not counted.
    /// </summary>
    public static int OpenDescriptors(Func<string, bool> target)
    {
        var count = 0;
        foreach (var fd in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget is { } link && target(link))
                {
                    count++;
                }
            }
            catch (IOException)
            {
                // closed while listed (the listing's own descriptor, among others)
            }
        }

        return count;
    }

    /// <summary>A live process; a zombie (exited, waiting to be reaped) counts as gone.</summary>
    public static bool IsAlive(int pid) => State(pid) is { } state && state is not ('Z' or 'X');

    /// <summary>The process start time in clock ticks since boot (/proc/&lt;pid&gt;/stat field 22); null if gone.</summary>
    public static long? StartTime(int pid)
    {
        var fields = StatFieldsAfterComm(pid);
        // Fields after "(comm)" start at field 3 (state); starttime is field 22.
        return fields is { Length: > 19 } && long.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks) ? ticks : null;
    }

    /// <summary>The NUL-separated command line as arguments; empty for a zombie or a gone process.</summary>
    public static IReadOnlyList<string> CommandLine(int pid)
    {
        try
        {
            var raw = File.ReadAllBytes($"/proc/{pid}/cmdline");
            return Encoding.UTF8.GetString(raw).Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>Live processes (other than this one) whose command line contains <paramref name="marker"/>.</summary>
    public static IReadOnlyList<int> FindByCommandLine(string marker)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            if (IsAlive(pid) && string.Join(' ', CommandLine(pid)).Contains(marker, StringComparison.Ordinal))
            {
                found.Add(pid);
            }
        }

        return found;
    }

    /// <summary>SIGKILLs every live process whose command line contains <paramref name="marker"/> and waits until they are gone.</summary>
    public static IReadOnlyList<int> KillAll(string marker, TimeSpan? wait = null)
    {
        var pids = FindByCommandLine(marker);
        foreach (var pid in pids)
        {
            Kill(pid);
        }

        var until = Stopwatch.StartNew();
        while (pids.Any(IsAlive) && until.Elapsed < (wait ?? TimeSpan.FromSeconds(10)))
        {
            Thread.Sleep(50);
        }

        return pids;
    }

    /// <summary>SIGKILL; no error when the process is already gone.</summary>
    public static void Kill(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            // already gone
        }
    }

    private static char? State(int pid) => StatFieldsAfterComm(pid) is { Length: > 0 } f && f[0].Length == 1 ? f[0][0] : null;

    /// <summary>"pid (comm) S ...": comm may hold spaces or parentheses, so the fields start after the last ')'.</summary>
    private static string[]? StatFieldsAfterComm(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var close = stat.LastIndexOf(')');
            return close < 0 ? null : stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

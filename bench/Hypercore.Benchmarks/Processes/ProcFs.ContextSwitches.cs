using System.Globalization;

namespace Hypercore.Benchmarks.Processes;

public static partial class ProcFs
{
    /// <summary>
    /// Voluntary + involuntary context switches of every live thread of a process so far (the sum over
    /// /proc/&lt;pid&gt;/task/*/status), or null when it is gone. Threads that ended are not counted: the difference over a
    /// window is a lower bound when threads exit inside it (the daemon's pool threads retire only after idling).
    /// </summary>
    public static long? ContextSwitches(int pid)
    {
        long total = 0;
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                try
                {
                    foreach (var line in File.ReadLines(Path.Combine(task, "status")))
                    {
                        if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal) ||
                            line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal))
                        {
                            total += long.Parse(line.AsSpan(line.IndexOf(':') + 1).Trim(), CultureInfo.InvariantCulture);
                        }
                    }
                }
                catch (IOException)
                {
                    // The thread ended while being read.
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        return total;
    }
}

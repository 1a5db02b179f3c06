using System.Globalization;
using System.Runtime.InteropServices;

namespace Hypercore.Scheduling;

/// <summary>
/// Linux thread nice values (setpriority on a thread id). A thread's nice value is inherited by every thread and
/// process it creates, so a thread that runs at a lower priority (<see cref="BackgroundThreads"/>) must not leave its
/// value on what it starts: <see cref="RestoreInherited"/> and <see cref="RestoreOthers"/> put it back.
/// </summary>
public static partial class ThreadNice
{
    private const int PrioProcess = 0;

    /// <summary>The nice value background threads were lowered to in this process (null: none was).</summary>
    private static int? s_lowered;

    /// <summary>The nice value of the thread that lowered them, before: the process's normal priority.</summary>
    private static int s_normal;

    /// <summary>This thread's id (gettid), or 0 off Linux.</summary>
    public static int CurrentThreadId()
    {
        if (!OperatingSystem.IsLinux())
        {
            return 0;
        }

        return RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => (int)SysCall(186),
            Architecture.Arm64 => (int)SysCall(178),
            _ => 0,
        };
    }

    /// <summary>A thread of this process's nice value (field 19 of /proc/self/task/TID/stat), or null.</summary>
    public static int? Of(int tid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/self/task/{tid}/stat");
            var fields = stat.AsSpan(stat.LastIndexOf(')') + 2);
            for (var i = 0; i < 16; i++) // state is field 3; nice is field 19
            {
                fields = fields[(fields.IndexOf(' ') + 1)..];
            }

            return int.Parse(fields[..fields.IndexOf(' ')], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>Sets a thread's nice value; false (nothing changed) when not allowed or not Linux.</summary>
    public static bool TrySet(int tid, int nice)
    {
        if (tid == 0)
        {
            return false;
        }

        try
        {
            return SetPriority(PrioProcess, tid, nice) == 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    /// <summary>
    /// Lowers the calling thread to <paramref name="nice"/>. Only where the value can be put back on the threads and
    /// processes it starts (root or CAP_SYS_NICE: <paramref name="canRestore"/>): elsewhere a hypervisor started from
    /// it would keep the lower priority for its whole life, so the thread stays as it is.
    /// </summary>
    internal static bool TryLowerCurrentThread(int nice, bool canRestore)
    {
        if (!canRestore || !OperatingSystem.IsLinux())
        {
            return false;
        }

        var tid = CurrentThreadId();
        if (Of(tid) is not { } normal || normal >= nice || !TrySet(tid, nice))
        {
            return false;
        }

        s_normal = normal;
        s_lowered = nice;
        return true;
    }

    /// <summary>
    /// Puts the calling thread back at the process's normal priority if it inherited a background thread's lower one
    /// (a thread started from it). Called before a long-lived process is started, so that it does not inherit it.
    /// </summary>
    public static void RestoreInherited()
    {
        if (s_lowered is { } lowered && CurrentThreadId() is var tid and not 0 && Of(tid) == lowered)
        {
            TrySet(tid, s_normal);
        }
    }

    /// <summary>
    /// Puts every other thread of the process that inherited the lower value (a thread-pool thread created while a
    /// background thread queued work) back at the normal one; <paramref name="keep"/> are the background threads.
    /// Returns how many were put back.
    /// </summary>
    internal static int RestoreOthers(int[] keep)
    {
        if (s_lowered is not { } lowered)
        {
            return 0;
        }

        var restored = 0;
        try
        {
            foreach (var dir in Directory.EnumerateDirectories("/proc/self/task"))
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var tid) && Array.IndexOf(keep, tid) < 0 &&
                    Of(tid) == lowered && TrySet(tid, s_normal))
                {
                    restored++;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return restored;
    }

    [LibraryImport("libc", EntryPoint = "setpriority")]
    private static partial int SetPriority(int which, int who, int prio);

    [LibraryImport("libc", EntryPoint = "syscall")]
    private static partial long SysCall(long number);
}

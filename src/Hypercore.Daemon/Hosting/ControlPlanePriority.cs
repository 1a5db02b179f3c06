using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace Hypercore.Daemon.Hosting;

/// <summary>
/// Issue 15, density: keeps the daemon's own guests from starving it of CPU. With the kernel's sched_autogroup on
/// (<c>/proc/sys/kernel/sched_autogroup_enabled</c> = 1, the default of most distributions) every session is one
/// scheduling group with an equal share, and each hypervisor is started in a session of its own (setsid): with 100
/// running TCG guests a daemon at the default weight gets about 1/101 of the CPU, and its starts, status writes and
/// API calls wait behind the guests it started (100 starts: 2.9 × the time of the same 100 QEMUs started bare, Deletes
/// acknowledged only after 30–60 s). Lowering the nice value of the daemon's own autogroup (<c>/proc/self/autogroup</c>,
/// root or CAP_SYS_NICE) gives its session a larger weight; the guests' new sessions still start at 0, so they keep
/// their equal shares among themselves. Autogroups apply only to tasks in the root cgroup: under systemd (the shipped
/// unit) or in a pod the daemon already has a cgroup of its own, separate from the guests' <c>hypercore.slice</c>
/// scopes, and this changes nothing there.
/// </summary>
public sealed partial class ControlPlanePriority(
    string autogroupEnabledPath = "/proc/sys/kernel/sched_autogroup_enabled", string autogroupPath = "/proc/self/autogroup", Func<bool>? leadsItsSession = null)
{
    private readonly Func<bool> _leadsItsSession = leadsItsSession ?? LeadsItsSession;

    /// <summary>
    /// The default: weight 88761 against 1024 per guest session, so with 100 busy guests the daemon's session gets
    /// about half of the CPU when it wants it, and nothing when it does not (it mostly waits). Nice −5 (3121) left 100
    /// starts 2.8 × bare on the first host; −10 (9548, about 1/11 of the CPU against 100 guests) was enough there
    /// (0.90 ×) but left 100 starts at 21–28 s against 16–23 s bare on a slower host, where −20 took 17–18 s
    /// (bench/NOTES.md, s28). Lower it with <c>autogroup-nice</c> where guests must keep more CPU from the daemon.
    /// </summary>
    public const int DefaultNice = -20;

    /// <summary>What happened, for the log and tests.</summary>
    public enum Outcome
    {
        Set,
        Unchanged,
        AutogroupOff,
        Failed,
    }

    /// <summary>
    /// The setting as configured: a value is applied; unset applies <see cref="DefaultNice"/> only when this process
    /// leads its own session, because an autogroup is the whole session's: a daemon started from a shell (or run
    /// inside a test host) would raise that shell's other work with it.
    /// </summary>
    public Outcome ApplyConfigured(int? configured, ILogger log)
    {
        if (configured is { } nice)
        {
            return Apply(nice, log);
        }

        if (!_leadsItsSession())
        {
            LogNotLeader(log, DefaultNice);
            return Outcome.Unchanged;
        }

        return Apply(DefaultNice, log);
    }

    /// <summary>True when this process is its session's leader (getsid(0) == getpid()).</summary>
    public static bool LeadsItsSession() => GetSid(0) == Environment.ProcessId;

    /// <summary>Sets the daemon's autogroup nice to <paramref name="nice"/>; never throws (the daemon runs without it).</summary>
    public Outcome Apply(int nice, ILogger log)
    {
        if (nice == 0)
        {
            return Outcome.Unchanged; // the setting's "leave it as it is"
        }

        try
        {
            if (!File.Exists(autogroupEnabledPath) || File.ReadAllText(autogroupEnabledPath).Trim() != "1")
            {
                LogAutogroupOff(log, autogroupEnabledPath);
                return Outcome.AutogroupOff;
            }

            var before = Current();
            File.WriteAllText(autogroupPath, nice.ToString(CultureInfo.InvariantCulture));
            LogSet(log, before?.ToString(CultureInfo.InvariantCulture) ?? "?", nice);
            return Outcome.Set;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogFailed(log, nice, autogroupPath, ex.Message);
            return Outcome.Failed;
        }
    }

    /// <summary>The autogroup's nice value ("/autogroup-42 nice 0"), or null when it cannot be read.</summary>
    public int? Current()
    {
        try
        {
            var text = File.ReadAllText(autogroupPath).Trim();
            var at = text.LastIndexOf(' ');
            return at >= 0 && int.TryParse(text.AsSpan(at + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? n : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    [LibraryImport("libc", EntryPoint = "getsid")]
    private static partial int GetSid(int pid);

    [LoggerMessage(9053, LogLevel.Information, "scheduling: this daemon shares its session (a shell's or a test host's) and leaves the session's autogroup as it is; started by a service manager or setsid it sets nice {Nice} there, or set autogroup-nice")]
    private static partial void LogNotLeader(ILogger log, int nice);

    [LoggerMessage(9050, LogLevel.Information, "scheduling: this daemon's autogroup nice {Before} → {Nice}, so that the guests it starts (a session each) cannot starve it of CPU (autogroup-nice)")]
    private static partial void LogSet(ILogger log, string before, int nice);

    [LoggerMessage(9051, LogLevel.Debug, "scheduling: sched_autogroup is off ({Path}); autogroup-nice has nothing to do")]
    private static partial void LogAutogroupOff(ILogger log, string path);

    [LoggerMessage(9052, LogLevel.Warning, "scheduling: could not set this daemon's autogroup nice to {Nice} ({Path}: {Message}); with many running guests its API and starts may wait for CPU. It needs root or CAP_SYS_NICE; autogroup-nice = 0 leaves it")]
    private static partial void LogFailed(ILogger log, int nice, string path, string message);
}

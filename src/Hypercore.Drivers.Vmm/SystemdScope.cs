using System.Globalization;
using System.Runtime.InteropServices;

namespace Hypercore.Drivers.Vmm;

/// <summary>Whether hypervisors can be started in transient systemd scopes on this host, and why not.</summary>
public interface ISystemdCheck
{
    /// <summary>The systemd-run to use, or null with the reason in <paramref name="why"/>.</summary>
    string? SystemdRun(out string why);
}

/// <summary>
/// systemd is usable when the host booted with it (<c>/run/systemd/system</c> exists, as sd_booted(3) checks; in a
/// pod that means the host's /run/systemd is mounted), <c>systemd-run</c> is on PATH and the daemon is root (a
/// transient scope in the system manager needs it).
/// </summary>
public sealed partial class HostSystemdCheck : ISystemdCheck
{
    private readonly string _runDirectory;

    public HostSystemdCheck(string runDirectory = "/run/systemd/system") => _runDirectory = runDirectory;

    public string? SystemdRun(out string why)
    {
        if (!Directory.Exists(_runDirectory))
        {
            why = $"{_runDirectory} does not exist (the host's systemd is not PID 1, or /run/systemd is not mounted into the pod)";
            return null;
        }

        if (GetEuid() != 0)
        {
            why = "the daemon is not root";
            return null;
        }

        var (path, tried) = BinaryLocator.Resolve("systemd-run");
        why = path is null ? BinaryLocator.NotFoundMessage("systemd-run", tried) : "";
        return path;
    }

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();
}

/// <summary>
/// Kubernetes issue 13: a hypervisor started through <c>systemd-run --scope</c> lives in its own transient scope under
/// <see cref="Slice"/> on the host, outside the daemon's cgroup (a pod's, or vistarad.service's), so a pod restart,
/// a DaemonSet update or a daemon crash leaves it running for the next daemon to adopt. The scope's MemoryMax is the
/// guest memory plus an overhead. systemd-run execs the command in place, so the recorded pid is the hypervisor's.
/// </summary>
public static class SystemdScope
{
    public const string Slice = "hypercore.slice";

    /// <summary>Memory a hypervisor process may use beyond its guest: the larger of 256 MiB and a quarter of the guest.</summary>
    public static long MemoryMaxBytes(int guestMemoryMb) => ((long)guestMemoryMb + Math.Max(256, guestMemoryMb / 4)) * 1024 * 1024;

    /// <summary>The command line that runs <paramref name="executable"/> in scope <c>hypercore-&lt;uid&gt;.scope</c>.</summary>
    public static (string Executable, IReadOnlyList<string> Arguments) Wrap(
        string systemdRun, string uid, int guestMemoryMb, string executable, IReadOnlyList<string> arguments) =>
        (systemdRun,
        [
            "--scope", "--quiet", "--collect",
            $"--unit=hypercore-{uid}", $"--slice={Slice}",
            "-p", "MemoryMax=" + MemoryMaxBytes(guestMemoryMb).ToString(CultureInfo.InvariantCulture),
            "--", executable, .. arguments,
        ]);
}

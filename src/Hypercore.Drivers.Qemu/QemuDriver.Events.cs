using Microsoft.Extensions.Logging;

namespace Hypercore.Drivers.Qemu;

/// <summary>
/// Issue 15 (idle4): QEMU's run-state events on the kept status session are reported as live-state changes at once, so
/// the reconciler inspects the VM then: a pause from outside (another QMP client's "stop"), a guest power-off or reset
/// (which -no-reboot -no-shutdown turn into status "shutdown" with QEMU still alive, so no process exit is seen) and a
/// guest panic are reported without waiting for the next status poll. The poll stays, as the detector of a QEMU that
/// stops answering.
/// </summary>
public sealed partial class QemuDriver
{
    /// <summary>Events after which query-status answers differently (QEMU's run state changed).</summary>
    public static readonly IReadOnlySet<string> RunStateEvents = new HashSet<string>(StringComparer.Ordinal)
    {
        "STOP", "RESUME", "SHUTDOWN", "RESET", "GUEST_PANICKED", "GUEST_CRASHLOADED", "SUSPEND", "SUSPEND_DISK", "WAKEUP",
    };

    private void OnStatusEvent(string uid, string name)
    {
        if (RunStateEvents.Contains(name))
        {
            LogStatusEvent(Log, uid, name);
            ReportLiveStateChange(uid);
        }
    }

    [LoggerMessage(3190, LogLevel.Debug, "{Uid}: QEMU reported {Event}; reconciling now")]
    private static partial void LogStatusEvent(ILogger log, string uid, string @event);
}

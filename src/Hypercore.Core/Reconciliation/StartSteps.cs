using Hypercore.MicroVms;

namespace Hypercore.Reconciliation;

/// <summary>
/// Work that must be done on the node before a VM's hypervisor can start, owned by a feature outside the
/// reconciler: pulling its images, admitting it against the node's capacity, leasing its network addresses.
/// The reconciler runs every registered step, lowest <see cref="Order"/> first, before each start (first boot and
/// every restart), and stops at the first that does not say <see cref="StartStepOutcome.Proceed"/>. On delete it
/// calls <see cref="ReleaseAsync"/> of every step, highest order first, after the driver cleaned up.
/// Steps are idempotent and keyed by the VM's uid: a daemon restart runs them again on the same VM.
/// </summary>
public interface IStartStep
{
    /// <summary>Short name for logs, e.g. "images".</summary>
    string Name { get; }

    /// <summary>Lower runs first. Admission 100, images 200, network 300; leave gaps.</summary>
    int Order { get; }

    /// <summary>
    /// Prepares the VM. May replace <see cref="StartContext.Vm"/> with a view of the VM the driver should start
    /// (e.g. an image reference resolved to a cached file); the stored record is never changed by that.
    /// </summary>
    Task<StartStepResult> PrepareAsync(StartContext context, CancellationToken cancellationToken);

    /// <summary>Gives back what <see cref="PrepareAsync"/> took for the VM (cache references, leases). Safe to call twice.</summary>
    Task ReleaseAsync(MicroVm vm, CancellationToken cancellationToken);
}

/// <summary>What the steps before a start see and pass on.</summary>
public sealed class StartContext
{
    public StartContext(MicroVm stored)
    {
        Stored = stored;
        Vm = stored;
    }

    /// <summary>The record as read from the store (with status as last written).</summary>
    public MicroVm Stored { get; }

    /// <summary>The VM as the driver will be given it; a step may replace it with a resolved view.</summary>
    public MicroVm Vm { get; set; }

    /// <summary>
    /// Host paths the steps created for this VM and vouch for (cached image files, per-VM overlays, seed disks):
    /// a driver's host-path policy accepts these without them being under a configured root, because no caller
    /// named them. Never fill this from the spec.
    /// </summary>
    /// <remarks>Made at its first use (issue 15, alloc9: with only admission as a step, as on most nodes, neither
    /// collection was ever used, and the two were ~150 bytes of every start).</remarks>
    public ISet<string> TrustedPaths => _trustedPaths ??= new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Feature data for the driver (e.g. leased addresses), by a key the feature owns.</summary>
    /// <remarks>Made at its first use, as <see cref="TrustedPaths"/>.</remarks>
    public IDictionary<string, object> Items => _items ??= new Dictionary<string, object>(StringComparer.Ordinal);

    private HashSet<string>? _trustedPaths;
    private Dictionary<string, object>? _items;
}

public enum StartStepOutcome
{
    /// <summary>Done for this start; go on to the next step, then the driver.</summary>
    Proceed,

    /// <summary>Not yet (a pull in progress, no room on the node): look again after <see cref="StartStepResult.RetryAfter"/>.</summary>
    Wait,

    /// <summary>Cannot start as specified (unknown image, nothing will ever fit): phase Failed until the spec changes; retried with backoff.</summary>
    Fail,
}

/// <summary>
/// A step's answer. <see cref="Status"/> is applied to the VM's status in the same write as the outcome (set the
/// step's own condition there, e.g. ImageReady or Admitted, with progress in its message). <see cref="Reason"/> and
/// <see cref="Message"/> become the Ready condition's when the step waits or fails.
/// </summary>
public sealed record StartStepResult(
    StartStepOutcome Outcome,
    Func<MicroVmStatus, MicroVmStatus>? Status = null,
    string Reason = "",
    string Message = "",
    TimeSpan RetryAfter = default)
{
    public static StartStepResult Proceed(Func<MicroVmStatus, MicroVmStatus>? status = null) => new(StartStepOutcome.Proceed, status);

    public static StartStepResult Wait(string reason, string message, TimeSpan retryAfter, Func<MicroVmStatus, MicroVmStatus>? status = null) =>
        new(StartStepOutcome.Wait, status, reason, message, retryAfter);

    public static StartStepResult Fail(string reason, string message, Func<MicroVmStatus, MicroVmStatus>? status = null) =>
        new(StartStepOutcome.Fail, status, reason, message);
}

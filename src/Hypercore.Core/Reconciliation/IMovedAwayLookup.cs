using Hypercore.MicroVms;

namespace Hypercore.Reconciliation;

/// <summary>
/// Kubernetes issue 13: the MicroVMs that were moved off this node while it was lost (the node lifecycle controller
/// labels them with the node they left). At start the daemon matches them by uid against the hypervisors its drivers
/// find without a record, and removes those leftovers: the VM runs on another node now. A store without moves (the
/// standalone one) registers none, and such hypervisors are only reported.
/// </summary>
public interface IMovedAwayLookup
{
    Task<IReadOnlyList<MicroVm>> MovedAwayAsync(CancellationToken cancellationToken);
}

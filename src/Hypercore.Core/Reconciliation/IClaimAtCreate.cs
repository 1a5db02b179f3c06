using Hypercore.MicroVms;

namespace Hypercore.Reconciliation;

/// <summary>
/// The reconciler's claim of a new VM, made in the Create's own write (issue 15, claim14). Registered with the reconciler
/// (<see cref="ReconcilerServiceCollectionExtensions.AddReconciler"/>), so only a process that runs one claims at create;
/// the application layer asks it and stores what it answers, and decides nothing itself.
/// </summary>
public interface IClaimAtCreate
{
    /// <summary>
    /// The status this node's reconciler would write with its claim on its first pass over a new record of
    /// <paramref name="spec"/> (generation 1, status Pending, nothing live for its fresh uid), or null when that pass would
    /// not begin with a claim in one write: the store cannot claim with a status in one write (Kubernetes), the spec is
    /// another node's, or the pass would refuse it (no such provider, a capability the provider lacks).
    /// </summary>
    MicroVmStatus? StatusAtCreate(MicroVmSpec spec);
}

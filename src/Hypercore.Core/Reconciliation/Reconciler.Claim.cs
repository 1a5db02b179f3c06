using Hypercore.MicroVms;

namespace Hypercore.Reconciliation;

/// <summary>
/// The first write for a new VM (issue 15): the claim and Provisioning in one durable write instead of two (a claim,
/// then Provisioning after the start steps), so a Create costs the store three writes (create, claim + Provisioning,
/// Running) instead of four. The claim is still durable before any start step makes host resources (taps, disks,
/// image overlays), so a crash always leaves an owner to clean them up.
/// </summary>
/// <remarks>
/// Provisioning now means "claimed by this node and being started": the start steps (admission, images, network) run
/// under it. A VM that a step makes wait goes back to Pending with the step's reason (e.g. Admitted=False), as before;
/// a Provisioning VM that admission has not admitted holds no share of the node (<see cref="Admission.NodeCapacity.Holds"/>).
/// The steps' own status changes (Admitted=True, ImageReady=True, RestoredFrom) then arrive with the Running write
/// (or the failure's), not in a Provisioning write of their own.
/// </remarks>
public sealed partial class Reconciler
{
    private const string ReasonProvisioning = "Provisioning";

    /// <summary>
    /// A new VM created Stopped (issue 15): its claim waits for the inspect and goes into the Stopped write, one durable
    /// write instead of two (claim, then Stopped). Only when the driver has nothing for it (NotFound): then the pass makes
    /// no host resource and calls no driver but the inspect, so nothing happens between the claim and the status that
    /// the claim would have to cover. Anything else found for it is claimed first, as before.
    /// </summary>
    /// <remarks>Only where claim + status is one write (<see cref="Store.IMicroVmStore.ClaimWithStatusIsOneWrite"/>): on
    /// Kubernetes it is two either way, and the finalizer stays the first.</remarks>
    private bool ClaimCanJoinStopped(MicroVm vm) =>
        _store.ClaimWithStatusIsOneWrite && vm.Spec.State == DesiredState.Stopped && vm.Status.Phase == Phase.Pending;

    /// <remarks>Returns the store's task rather than awaiting it (issue 15, alloc9: a state machine of ~150 bytes for every
    /// new VM, as WriteStatusAsync's was); the one caller awaits it at once, in the same try.</remarks>
    private Task<MicroVm> ClaimAsync(MicroVm vm, CancellationToken ct)
    {
        if (vm.Status.Phase != Phase.Pending || vm.Spec.State == DesiredState.Stopped)
        {
            return _store.ClaimAsync(vm.Key, ct);
        }

        var next = vm.Status with
        {
            Phase = Phase.Provisioning,
            Conditions = StandardConditions(vm.Status.Conditions, vm, (ConditionStatus.False, ReasonProvisioning, "preparing to start the hypervisor"),
                synchronized: null, _time.GetUtcNow()),
            ObservedGeneration = vm.Generation,
            Node = _options.NodeName,
        };
        LogPhase(vm.Key, vm.Status.Phase, next.Phase);
        return _store.ClaimWithStatusAsync(vm.Key, next, vm.ResourceVersion, ct);
    }

    /// <summary>
    /// Provisioning before the driver starts, with the steps' changes. When the claim already wrote Provisioning for
    /// this start, nothing is written here: the changes ride on the next write, which this pass always makes (Running,
    /// or the failure), and come back as Pending for it (issue 15, alloc9: rather than a copy of the record with them
    /// applied, ~230 bytes of every start). The record's version stays the stored one, so that write still checks for
    /// concurrent changes.
    /// </summary>
    private async ValueTask<(MicroVm Vm, Func<MicroVmStatus, MicroVmStatus> Pending)> ProvisioningAsync(
        MicroVm vm, Func<MicroVmStatus, MicroVmStatus> applied, int restarts, CancellationToken ct)
    {
        if (vm.Status.Phase == Phase.Provisioning && vm.Status.RestartCount == restarts && vm.Status.ObservedGeneration == vm.Generation)
        {
            return (vm, applied);
        }

        var written = await WriteStatusAsync(vm, Provisioning(applied, restarts),
            ready: (ConditionStatus.False, ReasonProvisioning, "starting the hypervisor"), ct);
        return (written, Unchanged);
    }

    /// <summary>A method of its own (issue 15, alloc9): a lambda in <see cref="ProvisioningAsync"/> over its parameters
    /// made its closure on entry, also on the usual way through, which writes nothing.</summary>
    private static Func<MicroVmStatus, MicroVmStatus> Provisioning(Func<MicroVmStatus, MicroVmStatus> applied, int restarts) =>
        s => applied(s) with { Phase = Phase.Provisioning, RestartCount = restarts };
}

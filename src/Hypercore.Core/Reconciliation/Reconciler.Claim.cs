using Hypercore.Drivers;
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
public sealed partial class Reconciler : IClaimAtCreate
{
    private const string ReasonProvisioning = "Provisioning";

    /// <summary>
    /// The claim of this node's first pass, made in the Create's own write (issue 15, claim14): a Running Create then costs
    /// the store two writes (create + claim + Provisioning, then Running) instead of three, and a Stopped one a single
    /// write instead of two; the first pass finds the record claimed, as after its own claim, and carries on from there.
    /// </summary>
    /// <remarks>
    /// <para>The status is the one the first pass's claim writes (<see cref="ClaimedStatus"/>), or, for a VM created
    /// Stopped, its Stopped write (<see cref="StoppedStatus"/>), which the pass makes today only after the driver's inspect
    /// found nothing for the VM. At create nothing can be found: drivers find a hypervisor by the VM's uid, and the uid is
    /// made in this very write. The first pass still inspects, and what it finds it stops and reports (Stopping, then
    /// Stopped), as for any Stopped VM. A VM claimed Provisioning is started by its first pass from the informer's copy,
    /// with no version read first (<see cref="IsProvisioningSinceCreate"/>): the fourteenth pass measured that read costing
    /// more than the write it saved, so the pass's Running write, checked against the copy's version, is the check.</para>
    /// <para>Null wherever the first pass would not begin with that claim: claim + status is not one write (Kubernetes,
    /// whose finalizer stays the first write), the spec names another node, or the pass would refuse the spec before any
    /// claim (no such provider, a capability it lacks). Driver availability is the one check of the pass left out (it
    /// looks for the binary on disk; the application layer never calls a driver): a VM whose hypervisor is missing is
    /// claimed, and the first pass writes Failed (ProviderUnavailable) over its Provisioning, where it wrote it over
    /// Pending before; a claim in the SQLite store is only the node's name, so deletion and retries are the same.</para>
    /// </remarks>
    public MicroVmStatus? StatusAtCreate(MicroVmSpec spec)
    {
        if (!_store.ClaimWithStatusIsOneWrite ||
            (spec.NodeName.Length > 0 && spec.NodeName != _options.NodeName) ||
            !_drivers.TryGet(spec.Provider, out var driver) ||
            CapabilityCheck.Unsupported(spec, driver).Count > 0)
        {
            return null;
        }

        var vm = new MicroVm { Uid = "", ResourceVersion = "", Spec = spec, Generation = 1, Status = MicroVmStatus.Initial }; // the record as it will be stored, but for its uid and version (not read)
        return spec.State == DesiredState.Stopped ? StoppedStatus(vm) : ClaimedStatus(vm);
    }

    /// <summary>
    /// A record claimed at create Stopped (<see cref="StatusAtCreate"/>) and unchanged since: its first pass (and any later
    /// one) writes nothing when the inspect finds nothing, so it may begin from the informer's copy without the version
    /// check (Reconciler.Cached.cs). A stale copy then does nothing: the newer version queues the VM again when the informer
    /// sees it. Anything found live is acted on only after the check.
    /// </summary>
    private static bool IsStoppedSinceCreate(MicroVm vm) =>
        vm.Claimed && vm.Generation == 1 && vm.Spec.State == DesiredState.Stopped &&
        vm.Status is { Phase: Phase.Stopped, ObservedGeneration: 1, Pid: null };

    /// <summary>
    /// A record claimed at create as Provisioning (<see cref="StatusAtCreate"/>) and unchanged since: its first pass may begin
    /// from the informer's copy without the version check (Reconciler.Cached.cs). When the inspect finds nothing for its uid
    /// the pass starts it and makes one write, Running (or the failure), checked against the copy's version: that write is
    /// the check, as the unchecked claim is for a Pending record. Anything found live is acted on only after the check.
    /// </summary>
    private static bool IsProvisioningSinceCreate(MicroVm vm) =>
        vm.Claimed && vm.Generation == 1 && vm.Spec.State != DesiredState.Stopped &&
        vm.Status is { Phase: Phase.Provisioning, ObservedGeneration: 1, Pid: null, RestartCount: 0 };

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

        var next = ClaimedStatus(vm);
        LogPhase(vm.Key, vm.Status.Phase, next.Phase);
        return _store.ClaimWithStatusAsync(vm.Key, next, vm.ResourceVersion, ct);
    }

    /// <summary>What the claim of a Pending VM that should run writes: Provisioning, by this node.</summary>
    private MicroVmStatus ClaimedStatus(MicroVm vm) => vm.Status with
    {
        Phase = Phase.Provisioning,
        Conditions = StandardConditions(vm.Status.Conditions, vm, (ConditionStatus.False, ReasonProvisioning, "preparing to start the hypervisor"),
            synchronized: null, _time.GetUtcNow()),
        ObservedGeneration = vm.Generation,
        Node = _options.NodeName,
    };

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

using Hypercore.MicroVms;

namespace Hypercore.GuestHealth;

/// <summary>Issue 15 (idle4, tidy5): which records a tick acts on, and how (<see cref="ProbeCandidates"/>).</summary>
public sealed partial class GuestHealthMonitor
{
    /// <summary>
    /// Replaces <see cref="Plan"/>'s decision, so a test can show that the tick and <see cref="NeedsTick"/> both follow
    /// whatever it says; null restores the monitor's own rule (<see cref="PlanFor"/>).
    /// </summary>
    internal Func<MicroVm, TickWork>? Planner { get; set; }

    /// <summary>
    /// What a tick does for <paramref name="vm"/>: the one place that decides it. <see cref="TickAsync"/> visits a record
    /// only when this is not <see cref="TickWork.None"/> and does exactly the work named; the records it refuses have
    /// their probe state dropped. What it reads is the record alone, not the clock or the probe state, so a record it
    /// refuses stays refused until the record changes.
    /// </summary>
    public TickWork Plan(MicroVm vm) => Planner is { } planner ? planner(vm) : PlanFor(vm, _nodeName);

    /// <summary>Whether a tick over <paramref name="vm"/> does anything: probe it, write a condition, or keep probe state.</summary>
    public bool NeedsTick(MicroVm vm) => Plan(vm) != TickWork.None;

    /// <summary>The monitor's rule for a record seen by the monitor of <paramref name="nodeName"/>.</summary>
    internal static TickWork PlanFor(MicroVm vm, string nodeName)
    {
        if (vm.Status.Node != nodeName)
        {
            return TickWork.None;
        }

        var work = vm.Spec.StartupProbe is null && vm.Status.FindCondition(ConditionGuestStarted) is not null
            ? TickWork.ClearGuestStarted // a GuestStarted condition left from a removed startup probe
            : TickWork.None;

        if (vm.Spec.ReadinessProbe is null && vm.Spec.LivenessProbe is null && vm.Spec.StartupProbe is null)
        {
            return vm.Status.FindCondition(Conditions.GuestReady) is not null ? work | TickWork.ClearGuestReady : work;
        }

        if (vm.IsDeleting || vm.Status.Phase != Phase.Running || vm.Status.Pid is null)
        {
            return vm.Spec.ReadinessProbe is not null && vm.Status.FindCondition(Conditions.GuestReady) is { Status: ConditionStatus.True }
                ? work | TickWork.MarkNotReady
                : work;
        }

        return work | TickWork.Probe;
    }
}

using Hypercore.MicroVms;

namespace Hypercore.GuestHealth;

/// <summary>Issue 15 (idle4): which records a tick can act on at all (<see cref="ProbeCandidates"/>).</summary>
public sealed partial class GuestHealthMonitor
{
    /// <summary>
    /// Whether a tick over <paramref name="vm"/> could do anything: probe it, write a condition, or keep probe state.
    /// False exactly where <see cref="TickAsync"/> would skip the record or only drop its probe state and return, so a
    /// tick over only the records this accepts acts the same as one over all of them (a dropped record is not seen, and
    /// unseen records' state is dropped). What it reads is the record alone, not the clock: a record it refuses stays
    /// refused until the record changes.
    /// </summary>
    public bool NeedsTick(MicroVm vm)
    {
        if (vm.Status.Node != _nodeName)
        {
            return false;
        }

        if (vm.Spec.StartupProbe is null && vm.Status.FindCondition(ConditionGuestStarted) is not null)
        {
            return true; // a GuestStarted condition left from a removed startup probe is cleared
        }

        if (vm.Spec.ReadinessProbe is null && vm.Spec.LivenessProbe is null && vm.Spec.StartupProbe is null)
        {
            return vm.Status.FindCondition(Conditions.GuestReady) is not null; // cleared once the probe is gone
        }

        if (vm.IsDeleting || vm.Status.Phase != Phase.Running || vm.Status.Pid is null)
        {
            return vm.Spec.ReadinessProbe is not null && vm.Status.FindCondition(Conditions.GuestReady) is { Status: ConditionStatus.True };
        }

        return true;
    }
}

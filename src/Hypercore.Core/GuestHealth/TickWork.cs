namespace Hypercore.GuestHealth;

/// <summary>
/// What a guest-health tick does for one record (<see cref="GuestHealthMonitor.Plan"/>). Both the tick and the choice
/// of records it visits (<see cref="GuestHealthMonitor.NeedsTick"/>, <see cref="ProbeCandidates"/>) read this one
/// decision, so the set of records visited cannot drift from what a visit does.
/// </summary>
[Flags]
public enum TickWork
{
    /// <summary>Nothing: the record is skipped and any probe state kept for it is dropped.</summary>
    None = 0,

    /// <summary>The startup probe was removed but a GuestStarted condition is left: clear it.</summary>
    ClearGuestStarted = 1,

    /// <summary>No probe at all but a GuestReady condition is left: drop probe state and clear it.</summary>
    ClearGuestReady = 2,

    /// <summary>A readiness probe, the VM not running (or deleting), GuestReady still True: drop probe state, set False.</summary>
    MarkNotReady = 4,

    /// <summary>Running with a pid and a probe: read the console and run the probes that are due.</summary>
    Probe = 8,
}

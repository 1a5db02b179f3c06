namespace Hypercore.Drivers;

/// <summary>
/// Issue 15: a driver that can tell the moment a VM's live state may have changed (its hypervisor process ended), so
/// the reconciler looks at that VM at once instead of at its next status poll. The poll stays: it is what finds
/// every other change (a guest paused from outside, a hypervisor that stopped answering).
/// </summary>
public interface ILiveStateChanges
{
    /// <summary>Raised with the VM's uid, on any thread; handlers only queue work and must not block.</summary>
    event Action<string>? LiveStateChanged;
}

using Hypercore.Drivers;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;

namespace Hypercore.Reconciliation;

/// <summary>
/// Kubernetes issue 13: a MicroVM can leave this node without this node deleting it. The node lifecycle controller
/// moves a restartPolicy Always MicroVM off a node that was lost (NotReady too long, e.g. cut off from the API
/// server) and may release one that is deleted meanwhile. When such a node comes back, its store no longer shows the
/// MicroVM, but a hypervisor may still run here (the outage cut the node off; it did not stop its guests): it is now
/// a second copy of a VM that runs elsewhere, or of one that was deleted. The last record reconciled here is kept per
/// key, so that the pass that finds the record gone stops and cleans up what this node still has for it. A record
/// deleted the ordinary way (<see cref="DeleteAsync"/>) is forgotten first, so that is never done twice.
/// </summary>
public sealed partial class Reconciler
{
    /// <summary>Ready reason the node lifecycle controller sets on a MicroVM of a lost node (ends it for its generation).</summary>
    public const string ReasonNodeLost = "NodeLost";

    /// <summary>
    /// The last record reconciled here, per key. A <see cref="Dictionary{TKey, TValue}"/> under a lock, not a
    /// ConcurrentDictionary (issue 15, sixth pass): that one kept a 56-byte node object per record alive, which every
    /// gen0 and gen1 collection after a Create copied; these entries live in the dictionary's one array. Every pass
    /// writes it once and holds the lock for a lookup or a store only.
    /// </summary>
    private readonly Dictionary<VmKey, MicroVm> _here = [];
    private readonly Lock _hereGate = new();

    private void RememberHere(MicroVm vm)
    {
        lock (_hereGate)
        {
            _here[vm.Key] = vm;
        }
    }

    private bool TryTakeHere(VmKey key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out MicroVm vm)
    {
        lock (_hereGate)
        {
            return _here.Remove(key, out vm);
        }
    }

    private MicroVm? FindHere(VmKey key)
    {
        lock (_hereGate)
        {
            return _here.GetValueOrDefault(key);
        }
    }

    /// <summary>
    /// Removes the entry only while it is still <paramref name="vm"/>'s incarnation: the pass that put it there is the
    /// only writer of its key while it runs (one pass per key), and <see cref="FollowHere"/> only moves it to a newer copy
    /// of the same uid. (Before FollowHere, the pair's equality, as ConcurrentDictionary's TryRemove of a pair did.)
    /// </summary>
    private void ForgetHereIf(VmKey key, MicroVm vm)
    {
        lock (_hereGate)
        {
            if (_here.TryGetValue(key, out var held) && held.Uid == vm.Uid)
            {
                _here.Remove(key);
            }
        }
    }

    /// <summary>
    /// The informer replaced <paramref name="before"/> with <paramref name="after"/>: if the entry here is exactly
    /// <paramref name="before"/> and <paramref name="after"/> is the same incarnation (same uid), the entry becomes
    /// <paramref name="after"/> (issue 15, survive7). The entry was the record a pass started from, and every pass writes
    /// (claim, status), so it was a copy the informer had already replaced: a second MicroVm and version string per
    /// record (~140 bytes) that nothing else kept, promoted and copied by every gen0 and gen1 collection with the record.
    /// Now the entry is the informer's own record. What a pass that finds the record gone cleans up is the same VM
    /// (uid and spec: a status write changes neither), seen with its latest status.
    /// </summary>
    internal void FollowHere(MicroVm before, MicroVm after)
    {
        if (before.Uid != after.Uid)
        {
            return; // a new incarnation under the same key: the old one is what a cleanup must find
        }

        lock (_hereGate)
        {
            ref var held = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrNullRef(_here, after.Key);
            if (!System.Runtime.CompilerServices.Unsafe.IsNullRef(ref held) && ReferenceEquals(held, before))
            {
                held = after;
            }
        }
    }

    /// <summary>
    /// NodeLost=True on a MicroVM this node still sees: the cluster declared this node lost (its kubelet stopped
    /// reporting) while this daemon still reaches the API server. The node lifecycle controller has released (or is
    /// moving) the MicroVM; claiming it back or writing its status would undo that every round. So the VM is left as
    /// it is (a running hypervisor keeps running) and looked at again each poll, until the node is Ready again and
    /// NodeLost is cleared, or the MicroVM is moved away (then <see cref="ReleaseGoneAsync"/> removes it here).
    /// </summary>
    private static bool OnLostNode(MicroVm vm) => vm.Status.FindCondition(ReasonNodeLost) is { Status: ConditionStatus.True };

    private void ForgetHere(VmKey key) => TryTakeHere(key, out _);

    private async Task<ReconcileResult> ReleaseGoneAsync(VmKey key, CancellationToken ct)
    {
        if (!TryTakeHere(key, out var last) || !_drivers.TryGet(last.Spec.Provider, out var driver))
        {
            return ReconcileResult.Done;
        }

        var live = await InspectAsync(last, driver, ct);
        LogGone(key, live.State);
        try
        {
            await RemoveLeftoverAsync(last, driver, ct);
        }
        catch
        {
            lock (_hereGate)
            {
                _here.TryAdd(key, last); // the retry (backoff) must still know what to clean up
            }
            throw;
        }

        return ReconcileResult.Done;
    }

    /// <summary>
    /// Stops and removes what <paramref name="driver"/> still has here for <paramref name="vm"/> (a record that now
    /// belongs to another node): its hypervisor, files and what the start steps hold. Used at start for leftovers
    /// found without a record (<see cref="IMovedAwayLookup"/>).
    /// </summary>
    public async Task RemoveLeftoverAsync(MicroVm vm, IHypervisorDriver driver, CancellationToken ct)
    {
        await driver.StopAsync(vm, TimeSpan.Zero, ct);
        await driver.CleanupAsync(vm, ct);
        for (var i = _steps.Count - 1; i >= 0; i--)
        {
            await _steps[i].ReleaseAsync(vm, ct);
        }
    }

    [LoggerMessage(1405, LogLevel.Warning, "{Key}: no longer assigned to this node (moved to another node or deleted while this node was lost); stopping and removing what is left here (hypervisor {State})")]
    private partial void LogGone(VmKey key, LiveState state);
}

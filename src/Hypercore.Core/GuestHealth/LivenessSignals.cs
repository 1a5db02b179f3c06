using System.Collections.Concurrent;
using Hypercore.MicroVms;

namespace Hypercore.GuestHealth;

/// <summary>
/// A liveness (or startup) probe that reached its failure threshold on one boot of one VM; <paramref name="Reason"/>
/// becomes the Ready condition's reason when the VM is ended.
/// </summary>
public sealed record LivenessFailure(string Uid, DateTimeOffset? BootTime, string Probe, string Message,
    string Reason = Reconciliation.Reconciler.ReasonLivenessProbeFailed);

/// <summary>
/// Hands liveness verdicts from the prober to the reconciler, which alone stops and starts VMs (one reconcile per key
/// at a time). A verdict counts only for the boot it was made on: one left over from before a restart is dropped.
/// </summary>
public sealed class LivenessSignals
{
    private readonly ConcurrentDictionary<VmKey, LivenessFailure> _failures = new();

    public void Report(VmKey key, LivenessFailure failure) => _failures[key] = failure;

    /// <summary>The verdict for the VM's current boot, taken (so it acts once); null when there is none.</summary>
    public LivenessFailure? TryTake(MicroVm vm)
    {
        if (!_failures.TryRemove(vm.Key, out var failure))
        {
            return null;
        }

        return failure.Uid == vm.Uid && failure.BootTime == vm.Status.BootTime ? failure : null;
    }

    public bool Pending(VmKey key) => _failures.ContainsKey(key);
}

using System.Runtime.InteropServices;
using Hypercore.Informers;
using Hypercore.MicroVms;

namespace Hypercore.Admission;

/// <summary>
/// What the VMs on this node hold, kept as a running total (issue 15): the informer's events and this process's
/// admissions and releases each move it by one VM's share, so an admission decision costs O(1) instead of a copy of
/// and a pass over every record on the node (at tens of thousands of records that pass was a tenth of the API
/// benchmark's CPU). The total is the one <see cref="NodeCapacity.AllocatedTotal"/> computes from the same cache and
/// the same admissions; the tests compare the two after every change.
/// </summary>
/// <remarks>
/// <see cref="OnEvent"/> runs on the informer's loop under its lock; the ledger's own lock is taken inside it and
/// never calls out, so the two locks are always taken in that order.
/// </remarks>
public sealed class AllocationLedger
{
    private readonly NodeCapacity _capacity;
    private readonly object _gate = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private NodeResources _total;

    public AllocationLedger(NodeCapacity capacity)
    {
        _capacity = capacity;
    }

    /// <summary>What the VMs hold, except <paramref name="exceptUid"/>'s own share.</summary>
    public NodeResources Total(string? exceptUid)
    {
        lock (_gate)
        {
            return exceptUid is not null && _entries.TryGetValue(exceptUid, out var own) ? _total - own.Share : _total;
        }
    }

    /// <summary>The uids this process admitted and what each was charged (a copy).</summary>
    public IReadOnlyDictionary<string, (VmKey Key, NodeResources Charged)> Admitted()
    {
        lock (_gate)
        {
            var copy = new Dictionary<string, (VmKey Key, NodeResources Charged)>(StringComparer.Ordinal);
            foreach (var (uid, entry) in _entries)
            {
                if (entry.IsAdmitted)
                {
                    copy[uid] = (entry.AdmittedKey, entry.Charged);
                }
            }

            return copy;
        }
    }

    /// <summary>Records that this process admitted the VM, charged <paramref name="charged"/>.</summary>
    public void Admit(string uid, VmKey key, NodeResources charged)
    {
        lock (_gate)
        {
            var entry = Take(uid);
            (entry.IsAdmitted, entry.AdmittedKey, entry.Charged) = (true, key, charged);
            Put(uid, entry);
        }
    }

    /// <summary>Takes back an admission; returns what it had charged, or null when the uid was not admitted.</summary>
    public (VmKey Key, NodeResources Charged)? Release(string uid)
    {
        lock (_gate)
        {
            var entry = Take(uid);
            (VmKey, NodeResources)? released = entry.IsAdmitted ? (entry.AdmittedKey, entry.Charged) : null;
            entry.IsAdmitted = false;
            Put(uid, entry);
            return released;
        }
    }

    /// <summary>Follows the informer's cache: give it to <see cref="MicroVmInformer.AddHandler"/>.</summary>
    public void OnEvent(InformerEvent ev)
    {
        var vm = ev.MicroVm;
        lock (_gate)
        {
            if (ev.Type == InformerEventType.Deleted)
            {
                var gone = Take(vm.Uid);
                gone.HasRecord = false;
                Put(vm.Uid, gone);
                return;
            }

            if (ev.Previous is { } before && before.Uid != vm.Uid)
            {
                var replaced = Take(before.Uid); // a new incarnation under the same key
                replaced.HasRecord = false;
                Put(before.Uid, replaced);
            }

            // A record keeps its entry (HasRecord), so the entry is changed where it is: one lookup of the uid instead of a
            // read and a write (issue 15, twelfth pass: ~3 events per Running Create). Nothing else touches the dictionary
            // while the reference is held.
            ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(_entries, vm.Uid, out _);
            _total -= entry.Share;
            entry.HasRecord = true;
            entry.OnNode = _capacity.IsOnThisNode(vm);
            entry.Request = _capacity.Request(vm.Spec);
            entry.HoldsIfAdmitted = NodeCapacity.Holds(vm, admittedHere: true);
            entry.HoldsOtherwise = NodeCapacity.Holds(vm, admittedHere: false);
            _total += entry.Share;
        }
    }

    /// <summary>The uid's entry with its share taken out of the total (under the lock); <see cref="Put"/> adds it back.</summary>
    private Entry Take(string uid)
    {
        _entries.TryGetValue(uid, out var entry);
        _total -= entry.Share;
        return entry;
    }

    private void Put(string uid, Entry entry)
    {
        if (entry.HasRecord || entry.IsAdmitted)
        {
            _entries[uid] = entry;
            _total += entry.Share;
        }
        else
        {
            _entries.Remove(uid);
        }
    }

    /// <summary>One uid's view: its cached record (if any) and its admission here (if any).</summary>
    private struct Entry
    {
        public bool HasRecord;
        public bool OnNode;
        public NodeResources Request;
        public bool HoldsIfAdmitted;
        public bool HoldsOtherwise;
        public bool IsAdmitted;
        public VmKey AdmittedKey;
        public NodeResources Charged;

        /// <summary>
        /// As <see cref="NodeCapacity.AllocatedTotal"/> counts it: a cached record on this node that holds its share
        /// (its admission's charge if admitted here, else its request); an admission whose record is not cached yet,
        /// its charge.
        /// </summary>
        public readonly NodeResources Share => HasRecord
            ? OnNode && (IsAdmitted ? HoldsIfAdmitted : HoldsOtherwise) ? (IsAdmitted ? Charged : Request) : default
            : IsAdmitted ? Charged : default;
    }
}

using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Options;

namespace Hypercore.Admission;

/// <summary>An amount of node resources: memory in MiB and vCPUs.</summary>
public readonly record struct NodeResources(long MemoryMb, int Vcpus)
{
    public static NodeResources operator +(NodeResources a, NodeResources b) => new(a.MemoryMb + b.MemoryMb, a.Vcpus + b.Vcpus);

    public static NodeResources operator -(NodeResources a, NodeResources b) => new(a.MemoryMb - b.MemoryMb, a.Vcpus - b.Vcpus);

    public override string ToString() => $"{MemoryMb} MiB, {Vcpus} vCPU";
}

/// <summary>The node's resources at one moment, as <c>vis node</c> shows them.</summary>
public sealed record CapacityReport(
    string Node,
    NodeResources Capacity,
    NodeResources Reserved,
    NodeResources Allocatable,
    NodeResources Allocated,
    double CpuOvercommitRatio,
    long VmMemoryOverheadMb,
    IReadOnlyList<VmKey> Admitted,
    IReadOnlyList<VmKey> Waiting)
{
    public NodeResources Free => Allocatable - Allocated;
}

/// <summary>Condition type and reasons of admission.</summary>
public static class AdmissionConditions
{
    public const string Admitted = "Admitted";
    public const string ReasonAdmitted = "Admitted";
    public const string ReasonInsufficientMemory = "InsufficientMemory";
    public const string ReasonInsufficientCpu = "InsufficientCPU";
}

/// <summary>
/// The node's capacity arithmetic: what the node has, what is allocatable, what a VM asks for and which VMs hold
/// their share. A VM holds its share from the moment it is admitted until it is Stopped, Failed or gone; a VM that
/// was running before this daemon started holds it too (it is adopted, never re-admitted).
/// </summary>
public sealed class NodeCapacity
{
    private readonly IHostResources _host;
    private readonly CapacityOptions _options;
    private readonly string _node;

    public NodeCapacity(IHostResources host, IOptions<CapacityOptions> options, IOptions<ReconcilerOptions> reconciler)
    {
        _host = host;
        _options = options.Value;
        _node = reconciler.Value.NodeName;
    }

    public string Node => _node;

    public CapacityOptions Options => _options;

    public NodeResources Capacity => new(
        _options.MemoryMb > 0 ? _options.MemoryMb : _host.MemoryMb,
        _options.Cpus > 0 ? _options.Cpus : _host.Cpus);

    public NodeResources Reserved => new(_options.ReservedMemoryMb, _options.ReservedCpus);

    public NodeResources Allocatable
    {
        get
        {
            var capacity = Capacity;
            var cpus = Math.Max(0, capacity.Vcpus - _options.ReservedCpus);
            return new(Math.Max(0, capacity.MemoryMb - _options.ReservedMemoryMb), (int)Math.Min(int.MaxValue, Math.Floor(cpus * _options.CpuOvercommitRatio)));
        }
    }

    /// <summary>What a VM is charged: guest memory plus the per-VM overhead, and its vCPUs.</summary>
    public NodeResources Request(MicroVmSpec spec) => new(spec.MemoryInMb + _options.VmMemoryOverheadMb, spec.Vcpu);

    /// <summary>True when the VM is this daemon's to run (standalone records carry no node name).</summary>
    public bool IsOnThisNode(MicroVm vm) => vm.Spec.NodeName.Length == 0 || vm.Spec.NodeName == _node;

    /// <summary>
    /// Why a VM can never be admitted here even on an empty node (reason, message), or null when it could be.
    /// </summary>
    public (string Reason, string Message)? NeverFits(MicroVmSpec spec)
    {
        var need = Request(spec);
        var allocatable = Allocatable;
        if (need.MemoryMb > allocatable.MemoryMb)
        {
            return (AdmissionConditions.ReasonInsufficientMemory,
                $"needs {need.MemoryMb} MiB ({spec.MemoryInMb} MiB guest memory + {_options.VmMemoryOverheadMb} MiB overhead) but node \"{_node}\" " +
                $"has only {allocatable.MemoryMb} MiB allocatable ({Capacity.MemoryMb} MiB minus {_options.ReservedMemoryMb} MiB reserved), even with no VM on it; " +
                "ask for less memory or raise the node's capacity settings (reserved-memory-mb, vm-memory-overhead-mb)");
        }

        if (need.Vcpus > allocatable.Vcpus)
        {
            return (AdmissionConditions.ReasonInsufficientCpu,
                $"needs {need.Vcpus} vCPU but node \"{_node}\" has only {allocatable.Vcpus} allocatable " +
                $"(({Capacity.Vcpus} CPUs - {_options.ReservedCpus} reserved) x overcommit {_options.CpuOvercommitRatio:0.##}), even with no VM on it; " +
                "ask for fewer vCPUs or raise cpu-overcommit-ratio");
        }

        return null;
    }

    /// <summary>Whether a VM's share is taken: <paramref name="admittedHere"/> says this process admitted it and has not released it.</summary>
    public static bool Holds(MicroVm vm, bool admittedHere)
    {
        switch (vm.Status.Phase)
        {
            case Phase.Stopped or Phase.Failed:
                return false;
            case Phase.Running or Phase.Paused or Phase.Stopping or Phase.CrashLoopBackOff or Phase.Deleting:
                return true;
            case Phase.Provisioning:
                // Written when the node claims a new VM, before admission decides (issue 15: one write for both), so
                // only an admitted one holds its share; one that must wait goes back to Pending with Admitted=False.
                return admittedHere || vm.Status.FindCondition(AdmissionConditions.Admitted)?.Status == ConditionStatus.True;
            default:
                return admittedHere || vm.Status.FindCondition(AdmissionConditions.Admitted)?.Status == ConditionStatus.True;
        }
    }

    /// <summary>
    /// What the VMs on this node hold, except <paramref name="exceptUid"/>. <paramref name="admitted"/> are the uids
    /// this process admitted (with what they were charged), counted even before their status shows it and even when
    /// the record is not yet in <paramref name="vms"/>.
    /// </summary>
    /// <summary>
    /// The total of <see cref="Allocated"/> without the list of holders, for each admission decision: no set of
    /// uids, no sorted list, no allocation per VM (issue 15: with 10,000 records the sorted, string-keyed holder list
    /// made every start cost milliseconds). <paramref name="find"/> looks a record up by key (the informer's cache),
    /// to tell which admitted uids <paramref name="vms"/> already counted.
    /// </summary>
    public NodeResources AllocatedTotal(
        IEnumerable<MicroVm> vms, IReadOnlyDictionary<string, (VmKey Key, NodeResources Charged)> admitted, string? exceptUid, Func<VmKey, MicroVm?> find)
    {
        var total = default(NodeResources);
        foreach (var vm in vms)
        {
            if (vm.Uid == exceptUid || !IsOnThisNode(vm))
            {
                continue;
            }

            var admittedHere = admitted.TryGetValue(vm.Uid, out var charged);
            if (Holds(vm, admittedHere))
            {
                total += admittedHere ? charged.Charged : Request(vm.Spec);
            }
        }

        foreach (var (uid, entry) in admitted)
        {
            if (uid != exceptUid && find(entry.Key)?.Uid != uid)
            {
                total += entry.Charged;
            }
        }

        return total;
    }

    public (NodeResources Total, IReadOnlyList<VmKey> Holders) Allocated(
        IEnumerable<MicroVm> vms, IReadOnlyDictionary<string, (VmKey Key, NodeResources Charged)> admitted, string? exceptUid)
    {
        var total = default(NodeResources);
        var holders = new List<VmKey>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var vm in vms)
        {
            seen.Add(vm.Uid);
            if (vm.Uid == exceptUid || !IsOnThisNode(vm) || !Holds(vm, admitted.ContainsKey(vm.Uid)))
            {
                continue;
            }

            total += admitted.TryGetValue(vm.Uid, out var charged) ? charged.Charged : Request(vm.Spec);
            holders.Add(vm.Key);
        }

        foreach (var (uid, entry) in admitted)
        {
            if (uid != exceptUid && !seen.Contains(uid))
            {
                total += entry.Charged;
                holders.Add(entry.Key);
            }
        }

        holders.Sort((a, b) => string.CompareOrdinal(a.ToString(), b.ToString()));
        return (total, holders);
    }
}

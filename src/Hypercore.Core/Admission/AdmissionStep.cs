using System.Collections.Concurrent;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging;

namespace Hypercore.Admission;

/// <summary>
/// Start step 100: a VM starts only when its memory (plus the per-VM overhead) and vCPUs fit in what the node has
/// left. One that does not fit waits with <c>Admitted=False</c> (InsufficientMemory / InsufficientCPU, with the
/// numbers) and is tried again every <see cref="CapacityOptions.AdmissionRetryInterval"/> and as soon as another VM
/// on the node goes away or stops (<see cref="AdmissionRequeue"/>). One that could not fit even on an empty node
/// fails. Decisions are made one at a time, so two VMs never both take the last free share.
/// </summary>
public sealed partial class AdmissionStep : IStartStep, IDisposable
{
    private readonly NodeCapacity _capacity;
    private readonly MicroVmInformer _informer;
    private readonly TimeProvider _time;
    private readonly ILogger<AdmissionStep> _log;
    private readonly SemaphoreSlim _decide = new(1, 1);
    private readonly AllocationLedger _ledger;
    private readonly ConcurrentDictionary<VmKey, string> _waiting = new();
    private IDisposable? _following;

    public AdmissionStep(NodeCapacity capacity, MicroVmInformer informer, TimeProvider time, ILogger<AdmissionStep> log)
    {
        _capacity = capacity;
        _informer = informer;
        _time = time;
        _log = log;
        _ledger = new AllocationLedger(capacity);
    }

    public string Name => "admission";

    public int Order => 100;

    /// <summary>VMs waiting for room, with the reason they last got.</summary>
    public IReadOnlyCollection<VmKey> Waiting => _waiting.Keys.ToList();

    public async Task<StartStepResult> PrepareAsync(StartContext context, CancellationToken cancellationToken)
    {
        var vm = context.Stored;
        var need = _capacity.Request(vm.Spec);
        if (_capacity.NeverFits(vm.Spec) is { } never)
        {
            _waiting.TryRemove(vm.Key, out _);
            _ledger.Release(vm.Uid);
            LogNeverFits(vm.Key, never.Message);
            return StartStepResult.Fail(never.Reason, never.Message, Set(vm, ConditionStatus.False, never.Reason, never.Message));
        }

        await _informer.Synced.WaitAsync(cancellationToken);
        await _decide.WaitAsync(cancellationToken);
        try
        {
            // Subscribed at the first decision, after the first list: the informer replays its cache into the ledger once.
            _following ??= _informer.AddHandler(_ledger.OnEvent);
            var allocated = _ledger.Total(exceptUid: vm.Uid);
            var allocatable = _capacity.Allocatable;
            var free = allocatable - allocated;
            string? reason = null, message = null;
            if (need.MemoryMb > free.MemoryMb)
            {
                reason = AdmissionConditions.ReasonInsufficientMemory;
                message = $"needs {need.MemoryMb} MiB ({vm.Spec.MemoryInMb} MiB + {_capacity.Options.VmMemoryOverheadMb} MiB overhead); " +
                          $"{allocated.MemoryMb} of {allocatable.MemoryMb} MiB allocatable on node \"{_capacity.Node}\" are in use, {Math.Max(0, free.MemoryMb)} MiB free; " +
                          "it starts when another VM on this node stops or is deleted";
            }
            else if (need.Vcpus > free.Vcpus)
            {
                reason = AdmissionConditions.ReasonInsufficientCpu;
                message = $"needs {need.Vcpus} vCPU; {allocated.Vcpus} of {allocatable.Vcpus} allocatable vCPUs on node \"{_capacity.Node}\" are in use, " +
                          $"{Math.Max(0, free.Vcpus)} free; it starts when another VM on this node stops or is deleted";
            }

            if (reason is not null && message is not null)
            {
                _ledger.Release(vm.Uid);
                if (_waiting.TryAdd(vm.Key, reason))
                {
                    LogWaiting(vm.Key, message);
                }

                return StartStepResult.Wait(reason, message, _capacity.Options.AdmissionRetryInterval, Set(vm, ConditionStatus.False, reason, message));
            }

            _ledger.Admit(vm.Uid, vm.Key, need);
            _waiting.TryRemove(vm.Key, out _);
            LogAdmitted(vm.Key, need.MemoryMb, need.Vcpus, free.MemoryMb - need.MemoryMb, free.Vcpus - need.Vcpus);
            return StartStepResult.Proceed(Set(vm, ConditionStatus.True, AdmissionConditions.ReasonAdmitted, AdmittedMessage(need)));
        }
        finally
        {
            _decide.Release();
        }
    }

    public Task ReleaseAsync(MicroVm vm, CancellationToken cancellationToken)
    {
        _waiting.TryRemove(vm.Key, out _);
        if (_ledger.Release(vm.Uid) is { } entry)
        {
            LogReleased(vm.Key, entry.Charged.MemoryMb, entry.Charged.Vcpus);
        }

        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _following?.Dispose();
        _decide.Dispose();
    }

    /// <summary>The node's resources now, for <c>vis node</c>.</summary>
    public CapacityReport Report()
    {
        var (allocated, holders) = _capacity.Allocated(_informer.List(), _ledger.Admitted(), exceptUid: null);
        var waiting = _waiting.Keys.OrderBy(k => k.ToString(), StringComparer.Ordinal).ToList();
        return new CapacityReport(_capacity.Node, _capacity.Capacity, _capacity.Reserved, _capacity.Allocatable, allocated,
            _capacity.Options.CpuOvercommitRatio, _capacity.Options.VmMemoryOverheadMb, holders, waiting);
    }

    /// <summary>
    /// The Admitted condition's message for a share (under <see cref="_decide"/>). The last one is reused while the shares
    /// admitted are the same size, as they mostly are (issue 15, alloc9): the message stays in every running VM's status,
    /// ~110 bytes a record for the GC to copy, and was made anew for each start.
    /// </summary>
    private string AdmittedMessage(NodeResources need)
    {
        if (_lastAdmitted is not { } last || last.Need != need)
        {
            _lastAdmitted = last = (need, $"{need.MemoryMb} MiB and {need.Vcpus} vCPU reserved on node \"{_capacity.Node}\"");
        }

        return last.Message;
    }

    private (NodeResources Need, string Message)? _lastAdmitted;

    private Func<MicroVmStatus, MicroVmStatus> Set(MicroVm vm, ConditionStatus status, string reason, string message)
    {
        var now = _time.GetUtcNow();
        return s => s with { Conditions = Conditions.Set(s.Conditions, AdmissionConditions.Admitted, status, reason, message, vm.Generation, now) };
    }

    [LoggerMessage(1400, LogLevel.Information, "{Key}: admitted ({MemoryMb} MiB, {Vcpus} vCPU); {FreeMemoryMb} MiB and {FreeVcpus} vCPU left on this node")]
    private partial void LogAdmitted(VmKey key, long memoryMb, int vcpus, long freeMemoryMb, int freeVcpus);

    [LoggerMessage(1401, LogLevel.Warning, "{Key}: waiting for room on this node: {Message}")]
    private partial void LogWaiting(VmKey key, string message);

    [LoggerMessage(1402, LogLevel.Warning, "{Key}: can never be admitted on this node: {Message}")]
    private partial void LogNeverFits(VmKey key, string message);

    [LoggerMessage(1403, LogLevel.Debug, "{Key}: released {MemoryMb} MiB and {Vcpus} vCPU")]
    private partial void LogReleased(VmKey key, long memoryMb, int vcpus);
}

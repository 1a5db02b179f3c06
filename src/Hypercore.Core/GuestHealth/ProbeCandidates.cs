using Hypercore.Informers;
using Hypercore.MicroVms;

namespace Hypercore.GuestHealth;

/// <summary>
/// Issue 15 (idle4): the records a guest-health tick can act on (<see cref="GuestHealthMonitor.NeedsTick"/>), kept up
/// to date from the informer's events instead of found by visiting every cached record four times a second. A node
/// with 15,000 stopped VMs without probes ticks over none of them; what the monitor decides for a record depends on
/// the record only, so a record left out is looked at again exactly when it changes.
/// </summary>
public sealed class ProbeCandidates : IDisposable
{
    private readonly GuestHealthMonitor _monitor;
    private readonly object _gate = new();
    private readonly Dictionary<VmKey, MicroVm> _vms = [];
    private readonly IDisposable _registration;

    /// <summary>Follows <paramref name="informer"/> from its current cache on (replayed as Added) until disposed.</summary>
    public ProbeCandidates(MicroVmInformer informer, GuestHealthMonitor monitor)
    {
        _monitor = monitor;
        _registration = informer.AddHandler(OnEvent);
    }

    /// <summary>Number of records a tick visits now.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _vms.Count;
            }
        }
    }

    /// <summary>The records to tick over now, in no particular order; the shared empty array when there are none.</summary>
    public IReadOnlyList<MicroVm> Snapshot()
    {
        lock (_gate)
        {
            return _vms.Count == 0 ? [] : [.. _vms.Values];
        }
    }

    public void Dispose() => _registration.Dispose();

    // Runs on the informer's loop under its lock: a dictionary write and a look at a few conditions, nothing more.
    private void OnEvent(InformerEvent ev)
    {
        var vm = ev.MicroVm;
        var keep = ev.Type != InformerEventType.Deleted && _monitor.NeedsTick(vm);
        lock (_gate)
        {
            if (keep)
            {
                _vms[vm.Key] = vm;
            }
            else
            {
                _vms.Remove(vm.Key);
            }
        }
    }
}

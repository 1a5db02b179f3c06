using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;

namespace Hypercore.Reconciliation;

/// <summary>
/// Issue 15: a VM whose driver reports a live-state change (<see cref="ILiveStateChanges"/>: its hypervisor process
/// ended) is queued at once, so a crash is reported, and its restart policy applied, without waiting for the poll.
/// </summary>
public sealed partial class ReconcilerHost
{
    private IDisposable SubscribeLiveStateChanges()
    {
        var sources = _drivers.All.OfType<ILiveStateChanges>().ToList();
        foreach (var source in sources)
        {
            source.LiveStateChanged += OnLiveStateChanged;
        }

        return new Unregister(() =>
        {
            foreach (var source in sources)
            {
                source.LiveStateChanged -= OnLiveStateChanged;
            }
        });
    }

    private void OnLiveStateChanged(string uid)
    {
        // Rare (a hypervisor ended), so a scan of the cache beats keeping a second index by uid up to date.
        foreach (var vm in _informer.Unordered())
        {
            if (vm.Uid == uid)
            {
                LogLiveStateChanged(vm.Key, uid);
                _queue.Add(vm.Key);
                return;
            }
        }
    }

    [LoggerMessage(1290, LogLevel.Debug, "{Key}: the hypervisor of {Uid} ended; reconciling now")]
    private partial void LogLiveStateChanged(VmKey key, string uid);
}

using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;

namespace Hypercore.Reconciliation;

/// <summary>
/// Issue 15: a VM whose driver reports a live-state change (<see cref="ILiveStateChanges"/>: its hypervisor process
/// ended) is queued at once, so a crash is reported, and its restart policy applied, without waiting for the poll.
/// The record is found by uid in a <see cref="UidIndex"/> kept while subscribed.
/// </summary>
public sealed partial class ReconcilerHost
{
    private IDisposable SubscribeLiveStateChanges()
    {
        var sources = _drivers.All.OfType<ILiveStateChanges>().ToList();
        var uids = sources.Count == 0 ? null : new UidIndex(_informer);
        _uids = uids;
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

            uids?.Dispose();
        });
    }

    // Kept from the informer's events while subscribed (tidy5): QMP events (pauses, resumes, shutdowns from outside)
    // made these reports less rare, and a scan of the cache per report is O(records).
    private volatile UidIndex? _uids;

    private void OnLiveStateChanged(string uid)
    {
        if (_uids is { } uids && uids.TryGetKey(uid, out var key))
        {
            LogLiveStateChanged(key, uid);
            _queue.Add(key);
        }
    }

    [LoggerMessage(1290, LogLevel.Debug, "{Key}: the hypervisor of {Uid} ended; reconciling now")]
    private partial void LogLiveStateChanged(VmKey key, string uid);
}

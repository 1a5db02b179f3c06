using Hypercore.MicroVms;

namespace Hypercore.Informers;

/// <summary>
/// Issue 15 (tidy5): the informer's cached records by uid, kept from its events (added under its lock, in its order),
/// so that a driver's report about a uid (<see cref="Drivers.ILiveStateChanges"/>: a hypervisor ended, QEMU paused,
/// resumed or shut down) finds its record in O(1) instead of by a scan of every cached record.
/// </summary>
/// <remarks>
/// Only a record's uid and key are kept, written when a record is added, deleted or replaced by another incarnation
/// (same key, new uid); a status or spec write of the same incarnation costs the handler a comparison and nothing else.
/// </remarks>
public sealed class UidIndex : IDisposable
{
    private readonly object _gate = new();
    private readonly Dictionary<string, VmKey> _keys = new(StringComparer.Ordinal);
    private readonly IDisposable _registration;

    /// <summary>Follows <paramref name="informer"/> from its current cache on (replayed as Added) until disposed.</summary>
    public UidIndex(MicroVmInformer informer) => _registration = informer.AddHandler(OnEvent);

    /// <summary>Number of uids indexed.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _keys.Count;
            }
        }
    }

    /// <summary>The key of the cached record with <paramref name="uid"/>, if one is cached.</summary>
    public bool TryGetKey(string uid, out VmKey key)
    {
        lock (_gate)
        {
            return _keys.TryGetValue(uid, out key);
        }
    }

    public void Dispose() => _registration.Dispose();

    private void OnEvent(InformerEvent ev)
    {
        var vm = ev.MicroVm;
        if (ev.Type == InformerEventType.Modified && ev.Previous is { } before && before.Uid == vm.Uid)
        {
            return; // another write of the same incarnation: its uid and key are indexed already
        }

        lock (_gate)
        {
            if (ev.Previous is { } previous)
            {
                Forget(previous);
            }

            if (ev.Type == InformerEventType.Deleted)
            {
                Forget(vm);
            }
            else
            {
                _keys[vm.Uid] = vm.Key;
            }
        }
    }

    // Only the entry that points at this record's key: a uid is never reused, but if a store ever did, the newer
    // record keeps its entry.
    private void Forget(MicroVm vm)
    {
        if (_keys.TryGetValue(vm.Uid, out var key) && key == vm.Key)
        {
            _keys.Remove(vm.Uid);
        }
    }
}

using Hypercore.MicroVms;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// The records this store's writer committed most recently, by key, with their resource versions (issue 15). A read
/// that finds a row at a version listed here, with the same spec and status text, returns the listed record instead of
/// parsing that text again (comparing two strings is much cheaper than parsing them; the text is compared too so that a
/// row edited by hand without a new version is still read as it is). The reconciler
/// reads each record right after writing it (a Create's claim, Provisioning and Running passes); parsing those rows
/// was a fifth of the API benchmark's server CPU.
/// </summary>
/// <remarks>
/// Bounded: two generations of at most <c>generationSize</c> keys; when the newer one fills up, the older is dropped.
/// The records are the same objects the writer returned and published to watchers (the informer caches them too), so
/// the entries cost little beyond the dictionaries. The text is kept as a 128-bit hash of each column, not the strings:
/// ~2.4 KB of JSON per key, up to two generations of keys, lived just long enough to be promoted by the GC and die in
/// gen1/gen2 (issue 15: ~20 MB of the API benchmark's heap, and GC pauses are its Create p99). XxHash128 of the
/// column's UTF-8 bytes (sixth pass: the writer has those bytes, and reads them back, without making strings): two
/// different texts compare equal with probability 2^-128, against a row edited outside the store without a new version.
/// </remarks>
internal sealed class RecentRecords(int generationSize)
{
    private readonly object _gate = new();
    private Dictionary<VmKey, Entry> _current = [];
    private Dictionary<VmKey, Entry> _previous = [];

    public void Put(long version, MicroVm vm, RowText text) => Put(version, vm, RowHash.Of(text));

    /// <param name="rowId">The row's rowid, when the writer knows it (0: not known); see <see cref="FindWritten"/>.</param>
    public void Put(long version, MicroVm vm, RowHash hash, long rowId = 0)
    {
        lock (_gate)
        {
            if (_current.Count >= generationSize && !_current.ContainsKey(vm.Key))
            {
                // The dropped generation's dictionary becomes the new one, emptied: at this size its arrays are on the
                // large-object heap, and a new dictionary growing to it again every generationSize writes allocated
                // ~0.4 MB of LOH each time, enough to set off blocking gen2 collections under a burst of Creates
                // (issue 15: measured as the largest LOH allocator of the API benchmark).
                var dropped = _previous;
                _previous = _current;
                dropped.Clear();
                _current = dropped;
            }

            _current[vm.Key] = new Entry(version, vm, hash, rowId);
        }
    }

    public void Remove(VmKey key)
    {
        lock (_gate)
        {
            _current.Remove(key);
            _previous.Remove(key);
        }
    }

    /// <summary>The record the writer committed for <paramref name="key"/> at <paramref name="version"/> with this text, or null.</summary>
    public MicroVm? Find(VmKey key, long version, RowText text) =>
        TryGet(key, version, out var entry) && entry.Text == RowHash.Of(text) ? entry.Vm : null; // hashed only when the version matches

    /// <summary>The record the writer committed for <paramref name="key"/> at <paramref name="version"/> with this text, or null.</summary>
    public MicroVm? Find(VmKey key, long version, RowHash text) =>
        TryGet(key, version, out var entry) && entry.Text == text ? entry.Vm : null;

    /// <summary>
    /// What the writer committed last for <paramref name="key"/>, with its rowid, when it is listed and the rowid known
    /// (writer thread: a status write checks the version and the spec against the row it updates, issue 15, thirteenth pass).
    /// </summary>
    public bool FindWritten(VmKey key, out Entry entry)
    {
        lock (_gate)
        {
            if (!_current.TryGetValue(key, out entry) && !_previous.TryGetValue(key, out entry))
            {
                return false;
            }
        }

        return entry.RowId != 0;
    }

    private bool TryGet(VmKey key, long version, out Entry entry)
    {
        lock (_gate)
        {
            if (!_current.TryGetValue(key, out entry) && !_previous.TryGetValue(key, out entry))
            {
                return false;
            }
        }

        return entry.Version == version;
    }

    /// <summary>A listed record: its version, the record, its row's JSON hashed, and its rowid (0: not known).</summary>
    internal readonly record struct Entry(long Version, MicroVm Vm, RowHash Text, long RowId);
}

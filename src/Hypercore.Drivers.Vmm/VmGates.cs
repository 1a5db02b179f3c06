namespace Hypercore.Drivers.Vmm;

/// <summary>
/// One gate per VM (by uid) that serialises the driver's operations on it, held only while someone holds or waits for
/// it (issue 15, survive7). The driver's gates were a <c>ConcurrentDictionary&lt;uid, SemaphoreSlim&gt;</c> that kept a
/// semaphore, its lock box and a dictionary node (~190 bytes, 3 objects) for every VM ever inspected until the VM was
/// cleaned up: under goal 2's Creates every record's first inspect made one, and every gen0 and gen1 collection copied
/// them with the records. Now an entry lives from the first waiter to the last release; a released gate with nobody
/// waiting goes back to a small pool, so an uncontended operation allocates only its releaser.
/// </summary>
/// <remarks>
/// Same exclusion as before: at most one holder per uid, waiters in the semaphore's order, a cancelled wait leaves
/// without holding. An entry is removed only when its count of holders and waiters is zero, so a waiter never waits
/// on a gate that a newer caller does not see (the old cleanup's <c>TryRemove</c> could drop a gate someone waited on).
/// </remarks>
internal sealed class VmGates
{
    private const int PoolSize = 16;

    private readonly Dictionary<string, Gate> _gates = new(StringComparer.Ordinal);
    private readonly Stack<Gate> _pool = new(PoolSize);

    /// <summary>Uids with a holder or a waiter now (for tests).</summary>
    public int Count
    {
        get
        {
            lock (_gates)
            {
                return _gates.Count;
            }
        }
    }

    /// <summary>Waits for the gate of <paramref name="uid"/>; dispose the result to release it.</summary>
    /// <remarks>A ValueTask (issue 15, alloc7): the gate is nearly always free, and then nothing is allocated for the wait.</remarks>
    public async ValueTask<IDisposable> EnterAsync(string uid, CancellationToken ct)
    {
        Gate gate;
        lock (_gates)
        {
            if (!_gates.TryGetValue(uid, out gate!))
            {
                gate = _pool.TryPop(out var pooled) ? pooled : new Gate();
                _gates.Add(uid, gate);
            }

            gate.Users++;
        }

        try
        {
            await gate.Semaphore.WaitAsync(ct);
        }
        catch
        {
            Leave(uid, gate);
            throw;
        }

        return new Releaser(this, uid, gate);
    }

    private void Leave(string uid, Gate gate)
    {
        lock (_gates)
        {
            if (--gate.Users == 0)
            {
                _gates.Remove(uid);
                if (_pool.Count < PoolSize)
                {
                    _pool.Push(gate); // nobody holds or waits: its count is back at 1
                }
            }
        }
    }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "SemaphoreSlim owns nothing to dispose unless its AvailableWaitHandle is asked for, which this never does")]
    private sealed class Gate
    {
        public readonly SemaphoreSlim Semaphore = new(1, 1); // no wait handle is ever asked for: nothing to dispose

        /// <summary>Holders and waiters; changed only under the dictionary's lock.</summary>
        public int Users;
    }

    private sealed class Releaser(VmGates owner, string uid, Gate gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Semaphore.Release();
                owner.Leave(uid, gate);
            }
        }
    }
}

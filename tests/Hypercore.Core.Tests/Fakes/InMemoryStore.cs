using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Hypercore.MicroVms;
using Hypercore.Store;

namespace Hypercore.Core.Tests.Fakes;

/// <summary>A hand-written store fake for reconciler tests: the port's semantics, in memory.</summary>
internal sealed class InMemoryStore : IMicroVmStore
{
    private readonly object _gate = new();
    private readonly Dictionary<VmKey, MicroVm> _items = [];
    private readonly List<Channel<StoreEvent>> _watchers = [];
    private long _rv;

    public string Name => "memory";

    public int StatusWrites { get; private set; }

    /// <summary>How many watches were ever opened (the informer should be the only follower).</summary>
    public int WatchesOpened { get; private set; }

    /// <summary>Watches open now (opened and not yet ended).</summary>
    public int ActiveWatches
    {
        get
        {
            lock (_gate)
            {
                return _watchers.Count;
            }
        }
    }

    /// <summary>How many of the next lists fail (a store that is briefly unreachable).</summary>
    public int FailLists { get; set; }

    /// <summary>Sends an event to every watcher without changing anything (a duplicate, a stale replay, a Resync).</summary>
    public void Inject(StoreEvent ev)
    {
        lock (_gate)
        {
            Publish(ev);
        }
    }

    /// <summary>Removes a record without telling the watchers (an event lost on the way).</summary>
    public void RemoveSilently(VmKey key)
    {
        lock (_gate)
        {
            _items.Remove(key);
        }
    }

    public Task<MicroVm?> GetAsync(VmKey key, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            return Task.FromResult(_items.GetValueOrDefault(key));
        }
    }

    public Task<MicroVm?> GetByUidAsync(string uid, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            return Task.FromResult(_items.Values.FirstOrDefault(v => v.Uid == uid));
        }
    }

    public Task<IReadOnlyList<MicroVm>> ListAsync(string? @namespace = null, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (FailLists > 0)
            {
                FailLists--;
                throw new IOException("store unreachable");
            }

            IReadOnlyList<MicroVm> list = _items.Values.Where(v => @namespace is null || v.Spec.Namespace == @namespace)
                .OrderBy(v => v.Spec.Namespace, StringComparer.Ordinal).ThenBy(v => v.Spec.Id, StringComparer.Ordinal).ToList();
            return Task.FromResult(list);
        }
    }

    public Task<MicroVm> CreateAsync(MicroVmSpec spec, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var key = new VmKey(spec.Namespace, spec.Id);
            if (_items.ContainsKey(key))
            {
                throw new AlreadyExistsException(key);
            }

            var vm = new MicroVm { Uid = Guid.NewGuid().ToString("N"), Spec = spec, ResourceVersion = Next() };
            return Task.FromResult(Put(vm, StoreEventType.Added));
        }
    }

    /// <summary>Records stored claimed by <see cref="CreateClaimedAsync"/> (each one write).</summary>
    public int ClaimedCreates { get; private set; }

    /// <summary>One write, as the SQLite store does it.</summary>
    public Task<MicroVm> CreateClaimedAsync(MicroVmSpec spec, MicroVmStatus status, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var key = new VmKey(spec.Namespace, spec.Id);
            if (_items.ContainsKey(key))
            {
                throw new AlreadyExistsException(key);
            }

            ClaimedCreates++;
            var vm = new MicroVm { Uid = Guid.NewGuid().ToString("N"), Spec = spec, Status = status, Claimed = true, ResourceVersion = Next() };
            return Task.FromResult(Put(vm, StoreEventType.Added));
        }
    }

    /// <summary>Puts a record as-is (for arranging a test), e.g. one that claims to be Running with a pid.</summary>
    public MicroVm Seed(MicroVm vm)
    {
        lock (_gate)
        {
            return Put(vm with { ResourceVersion = Next() }, StoreEventType.Added);
        }
    }

    public Task<MicroVm> UpdateSpecAsync(VmKey key, MicroVmSpec spec, string expectedResourceVersion, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var vm = Current(key, expectedResourceVersion);
            var gen = spec == vm.Spec ? vm.Generation : vm.Generation + 1;
            return Task.FromResult(Put(vm with { Spec = spec, Generation = gen, ResourceVersion = Next() }, StoreEventType.Modified));
        }
    }

    public Task<MicroVm> UpdateStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var vm = Current(key, expectedResourceVersion);
            StatusWrites++;
            return Task.FromResult(Put(vm with { Status = status, ResourceVersion = Next() }, StoreEventType.Modified));
        }
    }

    /// <summary>Whether the store says claim + status is one write (the SQLite store does; Kubernetes' does not).</summary>
    public bool ClaimWithStatusIsOneWrite { get; set; } = true;

    /// <summary>One write, as the SQLite store does it.</summary>
    public Task<MicroVm> ClaimWithStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var vm = Current(key, expectedResourceVersion);
            StatusWrites++;
            return Task.FromResult(Put(vm with { Status = status, Claimed = true, ResourceVersion = Next() }, StoreEventType.Modified));
        }
    }

    public Task<MicroVm> ClaimAsync(VmKey key, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var vm = Current(key, null);
            return Task.FromResult(vm.Claimed ? vm : Put(vm with { Claimed = true, ResourceVersion = Next() }, StoreEventType.Modified));
        }
    }

    public Task<MicroVm> MarkForDeletionAsync(VmKey key, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var vm = Current(key, null);
            return Task.FromResult(vm.IsDeleting ? vm : Put(vm with { DeletionRequestedAt = DateTimeOffset.UnixEpoch, ResourceVersion = Next() }, StoreEventType.Modified));
        }
    }

    public Task RemoveAsync(VmKey key, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (_items.Remove(key, out var vm))
            {
                Publish(new StoreEvent(StoreEventType.Deleted, vm));
            }
        }

        return Task.CompletedTask;
    }

    public async IAsyncEnumerable<StoreEvent> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var channel = Channel.CreateUnbounded<StoreEvent>();
        lock (_gate)
        {
            _watchers.Add(channel);
            WatchesOpened++;
        }

        try
        {
            await foreach (var ev in channel.Reader.ReadAllAsync(cancellationToken))
            {
                yield return ev;
            }
        }
        finally
        {
            lock (_gate)
            {
                _watchers.Remove(channel);
            }
        }
    }

    private MicroVm Current(VmKey key, string? expected)
    {
        if (!_items.TryGetValue(key, out var vm))
        {
            throw new NotFoundException(key);
        }

        if (expected is not null && vm.ResourceVersion != expected)
        {
            throw new ConflictException(key);
        }

        return vm;
    }

    private MicroVm Put(MicroVm vm, StoreEventType type)
    {
        _items[vm.Key] = vm;
        Publish(new StoreEvent(type, vm));
        return vm;
    }

    private void Publish(StoreEvent ev)
    {
        foreach (var w in _watchers)
        {
            w.Writer.TryWrite(ev);
        }
    }

    private string Next() => (++_rv).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Every event this store publishes while <paramref name="action"/> runs: watched from before it starts until the
    /// Added event of <paramref name="marker"/>, created after it (a test's spec nothing else uses).
    /// </summary>
    public async Task<List<StoreEvent>> EventsDuring(Func<Task> action, MicroVmSpec marker)
    {
        using var cts = new CancellationTokenSource();
        var events = new List<StoreEvent>();
        var watch = WatchAsync(cts.Token).GetAsyncEnumerator(cts.Token);
        var next = watch.MoveNextAsync().AsTask(); // subscribes
        await action();
        var end = await CreateAsync(marker);
        while (await next.WaitAsync(TimeSpan.FromSeconds(30)))
        {
            if (watch.Current.MicroVm?.Key == end.Key)
            {
                break;
            }

            events.Add(watch.Current);
            next = watch.MoveNextAsync().AsTask();
        }

        await cts.CancelAsync();
        return events;
    }
}

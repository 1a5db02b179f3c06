using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Hypercore.MicroVms;
using Hypercore.Store;

namespace Hypercore.Api.Tests.Fakes;

/// <summary>Hand-written store with the port's semantics (uids, generations, versions, watch), used until the SQLite store is merged.</summary>
public sealed class InMemoryMicroVmStore : IMicroVmStore
{
    private readonly object _gate = new();
    private readonly Dictionary<VmKey, MicroVm> _records = [];
    private readonly List<Channel<StoreEvent>> _watchers = [];
    private long _version;

    public string Name => "memory";

    public Task<MicroVm?> GetAsync(VmKey key, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            return Task.FromResult(_records.GetValueOrDefault(key));
        }
    }

    public Task<MicroVm?> GetByUidAsync(string uid, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            return Task.FromResult(_records.Values.FirstOrDefault(r => r.Uid == uid));
        }
    }

    public Task<IReadOnlyList<MicroVm>> ListAsync(string? @namespace = null, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            IReadOnlyList<MicroVm> list = _records.Values.Where(r => @namespace is null || r.Spec.Namespace == @namespace)
                .OrderBy(r => r.Spec.Namespace, StringComparer.Ordinal).ThenBy(r => r.Spec.Id, StringComparer.Ordinal).ToList();
            return Task.FromResult(list);
        }
    }

    public Task<MicroVm> CreateAsync(MicroVmSpec spec, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var key = new VmKey(spec.Namespace, spec.Id);
            if (_records.ContainsKey(key))
            {
                throw new AlreadyExistsException(key);
            }

            var vm = new MicroVm { Uid = Guid.NewGuid().ToString(), Spec = spec, ResourceVersion = NextVersion(), CreatedAt = DateTimeOffset.UnixEpoch };
            return Publish(StoreEventType.Added, vm);
        }
    }

    public Task<MicroVm> UpdateSpecAsync(VmKey key, MicroVmSpec spec, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
        Change(key, expectedResourceVersion, vm => vm with { Spec = spec, Generation = vm.Spec == spec ? vm.Generation : vm.Generation + 1 });

    public Task<MicroVm> UpdateStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
        Change(key, expectedResourceVersion, vm => vm with { Status = status });

    public Task<MicroVm> ClaimAsync(VmKey key, CancellationToken cancellationToken = default) =>
        Change(key, null, vm => vm with { Claimed = true });

    public Task<MicroVm> MarkForDeletionAsync(VmKey key, CancellationToken cancellationToken = default) =>
        Change(key, null, vm => vm with { DeletionRequestedAt = vm.DeletionRequestedAt ?? DateTimeOffset.UnixEpoch });

    public Task RemoveAsync(VmKey key, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (_records.Remove(key, out var vm))
            {
                Broadcast(new StoreEvent(StoreEventType.Deleted, vm));
            }
        }

        return Task.CompletedTask;
    }

    public IAsyncEnumerable<StoreEvent> WatchAsync(CancellationToken cancellationToken = default)
    {
        var channel = Channel.CreateUnbounded<StoreEvent>();
        lock (_gate)
        {
            _watchers.Add(channel);
        }

        return ReadAsync(channel, cancellationToken);
    }

    private async IAsyncEnumerable<StoreEvent> ReadAsync(Channel<StoreEvent> channel, [EnumeratorCancellation] CancellationToken ct)
    {
        try
        {
            await foreach (var ev in channel.Reader.ReadAllAsync(ct))
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

    private Task<MicroVm> Change(VmKey key, string? expectedVersion, Func<MicroVm, MicroVm> change)
    {
        lock (_gate)
        {
            var vm = _records.GetValueOrDefault(key) ?? throw new NotFoundException(key);
            if (expectedVersion is not null && vm.ResourceVersion != expectedVersion)
            {
                throw new ConflictException(key);
            }

            return Publish(StoreEventType.Modified, change(vm) with { ResourceVersion = NextVersion() });
        }
    }

    private Task<MicroVm> Publish(StoreEventType type, MicroVm vm)
    {
        _records[vm.Key] = vm;
        Broadcast(new StoreEvent(type, vm));
        return Task.FromResult(vm);
    }

    private void Broadcast(StoreEvent ev)
    {
        foreach (var w in _watchers)
        {
            w.Writer.TryWrite(ev);
        }
    }

    private string NextVersion() => (++_version).ToString(System.Globalization.CultureInfo.InvariantCulture);
}

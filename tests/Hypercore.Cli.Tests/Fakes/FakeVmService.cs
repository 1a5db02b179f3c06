using System.Threading.Channels;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Tests.Fakes;

/// <summary>
/// A hand-written VMService that keeps VMs in memory, records every request, and lets a test drive status
/// (phases, conditions) the way a reconciler would, with each change pushed to open watches.
/// </summary>
public sealed class FakeVmService(TimeProvider time) : VMService.VMServiceBase
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(string Namespace, string Id), MicroVM> _vms = [];
    private readonly List<(WatchMicroVMsRequest Filter, Channel<WatchMicroVMsResponse> Channel)> _watchers = [];
    private readonly List<IMessage> _received = [];
    private TaskCompletionSource _watchStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _uid;

    /// <summary>Every request, in arrival order.</summary>
    public IReadOnlyList<IMessage> Received
    {
        get
        {
            lock (_lock)
            {
                return [.. _received];
            }
        }
    }

    public IReadOnlyList<T> ReceivedOf<T>() where T : IMessage => Received.OfType<T>().ToList();

    /// <summary>Completes when a Watch call has sent its initial state (reset with <see cref="ResetWatchStarted"/>).</summary>
    public Task WatchStarted => _watchStarted.Task;

    /// <summary>Runs when a Watch call arrives, before it subscribes: lets a test finish work "between" a Get and the watch.</summary>
    public Action? BeforeWatchSubscribes { get; set; }

    /// <summary>When set, Watch answers Unimplemented, as a daemon without watch support would.</summary>
    public bool WatchUnimplemented { get; set; }

    /// <summary>When set, the next lifecycle call (Start/Stop/Pause/Resume) fails with this status.</summary>
    public Status? FailNextLifecycle { get; set; }

    /// <summary>Console output returned by Logs, in these chunks.</summary>
    public IReadOnlyList<byte[]> LogChunks { get; set; } = [];

    /// <summary>
    /// Makes the next Watch start as the daemon's does when its informer lags behind the store that Get reads: the
    /// initial ADDED is <paramref name="stale"/>, then the changes the informer had not yet seen follow as MODIFIED.
    /// </summary>
    public void LagNextWatch(MicroVM stale, params MicroVM[] backlog)
    {
        lock (_lock)
        {
            _lag = (stale.Clone(), backlog.Select(b => b.Clone()).ToArray());
        }
    }

    private (MicroVM Stale, MicroVM[] Backlog)? _lag;

    /// <summary>A copy of the stored record, as Get returns it now.</summary>
    public MicroVM Current(string @namespace, string id)
    {
        lock (_lock)
        {
            return _vms[(@namespace, id)].Clone();
        }
    }

    public void ResetWatchStarted() => _watchStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Stores a VM as if created earlier.</summary>
    public MicroVM Seed(MicroVMSpec spec, string phase = "Pending", DateTimeOffset? createdAt = null, int pid = 0)
    {
        lock (_lock)
        {
            var vm = NewRecord(spec, createdAt ?? time.GetUtcNow());
            vm.Status.Phase = phase;
            vm.Status.ObservedGeneration = vm.Spec.Generation;
            vm.Status.Pid = pid;
            _vms[(vm.Spec.Namespace, vm.Spec.Id)] = vm;
            return vm.Clone();
        }
    }

    /// <summary>What a reconciler would write: a phase for the current generation, and the Ready condition.</summary>
    public void SetPhase(string @namespace, string id, string phase, string readyReason = "", string readyMessage = "")
    {
        lock (_lock)
        {
            var vm = _vms[(@namespace, id)];
            vm.Status.Phase = phase;
            vm.Status.ObservedGeneration = vm.Spec.Generation;
            vm.Status.Conditions.Clear();
            vm.Status.Conditions.Add(new Condition
            {
                Type = "Ready",
                Status = phase == "Running" ? "True" : "False",
                Reason = readyReason,
                Message = readyMessage,
                LastTransitionTime = Timestamp.FromDateTimeOffset(time.GetUtcNow()),
                ObservedGeneration = vm.Spec.Generation,
            });
            vm.Version++;
            Publish("MODIFIED", vm);
        }
    }

    /// <summary>What the node's prober writes: the GuestReady condition (guest health).</summary>
    public void SetGuestReady(string @namespace, string id, string status, string reason, string message)
    {
        lock (_lock)
        {
            var vm = _vms[(@namespace, id)];
            foreach (var old in vm.Status.Conditions.Where(c => c.Type == "GuestReady").ToList())
            {
                vm.Status.Conditions.Remove(old);
            }

            vm.Status.Conditions.Add(new Condition
            {
                Type = "GuestReady", Status = status, Reason = reason, Message = message,
                LastTransitionTime = Timestamp.FromDateTimeOffset(time.GetUtcNow()), ObservedGeneration = vm.Spec.Generation,
            });
            vm.Version++;
            Publish("MODIFIED", vm);
        }
    }

    /// <summary>Removes the record, as the reconciler does once a deletion is cleaned up.</summary>
    public void Remove(string @namespace, string id)
    {
        lock (_lock)
        {
            if (_vms.Remove((@namespace, id), out var vm))
            {
                Publish("DELETED", vm);
            }
        }
    }

    /// <summary>Ends every open watch stream normally.</summary>
    public void EndWatches()
    {
        lock (_lock)
        {
            foreach (var (_, channel) in _watchers)
            {
                channel.Writer.TryComplete();
            }

            _watchers.Clear();
        }
    }

    public MicroVM? Find(string @namespace, string id)
    {
        lock (_lock)
        {
            return _vms.TryGetValue((@namespace, id), out var vm) ? vm.Clone() : null;
        }
    }

    public override Task<CreateMicroVMResponse> Create(CreateMicroVMRequest request, ServerCallContext context)
    {
        lock (_lock)
        {
            _received.Add(request.Clone());
            var spec = request.Microvm ?? throw new RpcException(new Status(StatusCode.InvalidArgument, "microvm is required"));
            if (spec.Id.Length == 0)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, "id is required"));
            }

            var ns = spec.Namespace.Length > 0 ? spec.Namespace : "default";
            if (_vms.ContainsKey((ns, spec.Id)))
            {
                throw new RpcException(new Status(StatusCode.AlreadyExists, $"microvm {ns}/{spec.Id} already exists"));
            }

            var vm = NewRecord(spec, time.GetUtcNow());
            _vms[(ns, spec.Id)] = vm;
            Publish("ADDED", vm);
            return Task.FromResult(new CreateMicroVMResponse { Microvm = vm.Clone() });
        }
    }

    public override Task<GetMicroVMResponse> Get(GetMicroVMRequest request, ServerCallContext context)
    {
        lock (_lock)
        {
            _received.Add(request.Clone());
            return Task.FromResult(new GetMicroVMResponse { Microvm = Lookup(request.Namespace, request.Id).Clone() });
        }
    }

    public override Task<ListMicroVMsResponse> List(ListMicroVMsRequest request, ServerCallContext context)
    {
        lock (_lock)
        {
            _received.Add(request.Clone());
            var response = new ListMicroVMsResponse();
            response.Microvm.Add(_vms.Values
                .Where(v => request.Namespace.Length == 0 || v.Spec.Namespace == request.Namespace)
                .OrderBy(v => v.Spec.Namespace, StringComparer.Ordinal).ThenBy(v => v.Spec.Id, StringComparer.Ordinal)
                .Select(v => v.Clone()));
            return Task.FromResult(response);
        }
    }

    public override Task<Empty> Delete(DeleteMicroVMRequest request, ServerCallContext context)
    {
        lock (_lock)
        {
            _received.Add(request.Clone());
            var vm = Lookup(request.Namespace, request.Id);
            vm.Status.Deleting = true;
            vm.Status.Phase = "Deleting";
            vm.Spec.DeletedAt = Timestamp.FromDateTimeOffset(time.GetUtcNow());
            Publish("MODIFIED", vm);
            return Task.FromResult(new Empty());
        }
    }

    public override Task<GetMicroVMResponse> Start(LifecycleRequest request, ServerCallContext context) => SetState(request, "Running");

    public override Task<GetMicroVMResponse> Stop(LifecycleRequest request, ServerCallContext context) => SetState(request, "Stopped");

    public override Task<GetMicroVMResponse> Pause(LifecycleRequest request, ServerCallContext context) => SetState(request, "Paused");

    public override Task<GetMicroVMResponse> Resume(LifecycleRequest request, ServerCallContext context) => SetState(request, "Running");

    public override async Task Watch(WatchMicroVMsRequest request, IServerStreamWriter<WatchMicroVMsResponse> responseStream, ServerCallContext context)
    {
        Channel<WatchMicroVMsResponse> channel;
        List<MicroVM> current;
        BeforeWatchSubscribes?.Invoke();
        lock (_lock)
        {
            _received.Add(request.Clone());
            if (WatchUnimplemented)
            {
                throw new RpcException(new Status(StatusCode.Unimplemented, "watch is not implemented"));
            }

            channel = Channel.CreateUnbounded<WatchMicroVMsResponse>();
            current = _vms.Values.Where(v => Matches(request, v)).Select(v => v.Clone()).ToList();
            if (_lag is { } lag)
            {
                current = [lag.Stale];
                foreach (var caughtUp in lag.Backlog)
                {
                    channel.Writer.TryWrite(new WatchMicroVMsResponse { Type = "MODIFIED", Microvm = caughtUp });
                }

                _lag = null;
            }

            _watchers.Add((request, channel));
        }

        try
        {
            // As the daemon does: headers once subscribed, so a client may read the current state after them.
            await context.WriteResponseHeadersAsync([]);
            foreach (var vm in current)
            {
                await responseStream.WriteAsync(new WatchMicroVMsResponse { Type = "ADDED", Microvm = vm });
            }

            _watchStarted.TrySetResult();
            await foreach (var change in channel.Reader.ReadAllAsync(context.CancellationToken))
            {
                await responseStream.WriteAsync(change);
            }
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            lock (_lock)
            {
                _watchers.RemoveAll(w => w.Channel == channel);
            }
        }
    }

    public override async Task Logs(LogsRequest request, IServerStreamWriter<LogsResponse> responseStream, ServerCallContext context)
    {
        lock (_lock)
        {
            _received.Add(request.Clone());
            Lookup(request.Namespace, request.Id);
        }

        foreach (var chunk in LogChunks)
        {
            await responseStream.WriteAsync(new LogsResponse { Data = ByteString.CopyFrom(chunk) });
        }
    }

    private Task<GetMicroVMResponse> SetState(LifecycleRequest request, string state)
    {
        lock (_lock)
        {
            _received.Add(request.Clone());
            if (FailNextLifecycle is { } failure)
            {
                FailNextLifecycle = null;
                throw new RpcException(failure);
            }

            var vm = Lookup(request.Namespace, request.Id);
            if (vm.Spec.State != state)
            {
                vm.Spec.State = state;
                vm.Spec.Generation++;
                vm.Spec.UpdatedAt = Timestamp.FromDateTimeOffset(time.GetUtcNow());
                vm.Version++;
                Publish("MODIFIED", vm);
            }

            return Task.FromResult(new GetMicroVMResponse { Microvm = vm.Clone() });
        }
    }

    /// <summary>
    /// The status a new record is stored with; null: Pending, unobserved (a daemon whose reconciler claims it later: the
    /// Kubernetes store, or an API without a reconciler). vistarad on SQLite stores it claimed (Provisioning, observed).
    /// </summary>
    public Func<MicroVMSpec, MicroVMStatus>? CreatedStatus { get; set; }

    private MicroVM NewRecord(MicroVMSpec requested, DateTimeOffset createdAt)
    {
        var spec = requested.Clone();
        spec.Namespace = spec.Namespace.Length > 0 ? spec.Namespace : "default";
        spec.Uid = $"uid-{Interlocked.Increment(ref _uid)}";
        spec.Generation = 1;
        spec.State = spec.State.Length > 0 ? spec.State : "Running";
        spec.CreatedAt = Timestamp.FromDateTimeOffset(createdAt);
        return new MicroVM { Version = 1, Spec = spec, Status = CreatedStatus?.Invoke(spec) ?? new MicroVMStatus { Phase = "Pending", Node = "fake-node" } };
    }

    /// <summary>By namespace and id, or by id alone when no namespace is given (as the daemon does).</summary>
    private MicroVM Lookup(string @namespace, string id)
    {
        var found = _vms.Values.Where(v => v.Spec.Id == id && (@namespace.Length == 0 || v.Spec.Namespace == @namespace)).ToList();
        return found.Count == 1
            ? found[0]
            : throw new RpcException(new Status(StatusCode.NotFound, $"microvm {(@namespace.Length > 0 ? @namespace + "/" : "")}{id} not found"));
    }

    private static bool Matches(WatchMicroVMsRequest filter, MicroVM vm) =>
        (filter.Namespace.Length == 0 || filter.Namespace == vm.Spec.Namespace) && (filter.Id.Length == 0 || filter.Id == vm.Spec.Id);

    private void Publish(string type, MicroVM vm)
    {
        foreach (var (filter, channel) in _watchers.Where(w => Matches(w.Filter, vm)))
        {
            channel.Writer.TryWrite(new WatchMicroVMsResponse { Type = type, Microvm = vm.Clone() });
        }
    }
}

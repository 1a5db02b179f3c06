using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Hypercore.Api.Logs;
using Hypercore.Api.Security;
using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Operations;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Proto = Hypercore.Contracts.VmApi;

namespace Hypercore.Api.MicroVms;

/// <summary>
/// vm.services.api.VMService: flintlock-shaped MicroVM API over the application layer (<see cref="MicroVmOperations"/>)
/// and the shared informer; it never touches the store. Writes only desired state; the reconciler does the rest. Also reachable as HTTP/JSON through the google.api.http routes.
/// </summary>
public sealed class VmServiceImpl : Proto.VMService.VMServiceBase
{
    private readonly MicroVmOperations _ops;
    private readonly MicroVmInformer _informer;
    private readonly ConsoleLogStreamer _logs;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly IOptionsMonitor<HypercoreApiOptions> _options;
    private readonly DriverRegistry _drivers;
    private readonly AccessPolicy? _access;

    public VmServiceImpl(
        MicroVmOperations ops,
        MicroVmInformer informer,
        ConsoleLogStreamer logs,
        IHostApplicationLifetime lifetime,
        IOptionsMonitor<HypercoreApiOptions> options,
        DriverRegistry drivers,
        AccessPolicy? access = null)
    {
        _access = access;
        _ops = ops;
        _informer = informer;
        _drivers = drivers;
        _logs = logs;
        _lifetime = lifetime;
        _options = options;
    }

    public override async Task<Proto.CreateMicroVMResponse> Create(Proto.CreateMicroVMRequest request, ServerCallContext context)
    {
        var (spec, errors) = CreateRequest.Read(request.Microvm, request.Metadata, base64Metadata: false);
        if (errors.Count == 0)
        {
            CreateRequest.RefuseUnservableMetadata(spec, _drivers);
        }

        var created = await _ops.CreateAsync(spec, errors, context.CancellationToken);
        return new Proto.CreateMicroVMResponse { Microvm = Mapping.ToProto(created) };
    }

    public override async Task<Empty> Delete(Proto.DeleteMicroVMRequest request, ServerCallContext context)
    {
        var vm = await _ops.FindAsync(request.Id, request.Namespace, request.Uid, context.CancellationToken);
        await _ops.DeleteAsync(vm, context.CancellationToken);
        return new Empty();
    }

    public override async Task<Proto.GetMicroVMResponse> Get(Proto.GetMicroVMRequest request, ServerCallContext context)
    {
        var vm = await _ops.FindAsync(request.Id, request.Namespace, request.Uid, context.CancellationToken);
        return new Proto.GetMicroVMResponse { Microvm = Mapping.ToProto(vm) };
    }

    public override async Task<Proto.ListMicroVMsResponse> List(Proto.ListMicroVMsRequest request, ServerCallContext context)
    {
        var all = await _ops.ListAsync(request.Namespace, request.HasName ? request.Name : "", context.CancellationToken);
        var reply = new Proto.ListMicroVMsResponse();
        reply.Microvm.Add(all.Select(Mapping.ToProto));
        return reply;
    }

    /// <summary>The seed's list stream: the current list, one message per MicroVM, then the stream ends.</summary>
    public override async Task ListVMsStream(Proto.ListMicroVMsRequest request, IServerStreamWriter<Proto.ListMessage> responseStream, ServerCallContext context)
    {
        var all = await _ops.ListAsync(request.Namespace, request.HasName ? request.Name : "", context.CancellationToken);
        foreach (var vm in all)
        {
            await responseStream.WriteAsync(new Proto.ListMessage { Microvm = Mapping.ToProto(vm) }, context.CancellationToken);
        }
    }

    public override Task<Proto.GetMicroVMResponse> Start(Proto.LifecycleRequest request, ServerCallContext context) =>
        LifecycleAsync(request, LifecycleAction.Start, context);

    public override Task<Proto.GetMicroVMResponse> Stop(Proto.LifecycleRequest request, ServerCallContext context) =>
        LifecycleAsync(request, LifecycleAction.Stop, context);

    public override Task<Proto.GetMicroVMResponse> Pause(Proto.LifecycleRequest request, ServerCallContext context) =>
        LifecycleAsync(request, LifecycleAction.Pause, context);

    public override Task<Proto.GetMicroVMResponse> Resume(Proto.LifecycleRequest request, ServerCallContext context) =>
        LifecycleAsync(request, LifecycleAction.Resume, context);

    /// <summary>
    /// Sends the current matching records as ADDED, then every change, from the shared informer (no store watch per
    /// call). Response headers are sent once subscribed, so a client that reads the current state after the headers
    /// cannot miss a change in between. A client that leaves more than Api:WatchBufferEvents events unread is ended
    /// with ResourceExhausted rather than slowing the daemon or other watchers.
    /// </summary>
    public override async Task Watch(Proto.WatchMicroVMsRequest request, IServerStreamWriter<Proto.WatchMicroVMsResponse> responseStream, ServerCallContext context)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _lifetime.ApplicationStopping);
        var ct = cts.Token;
        var visible = _access?.VisibleToCurrentCaller(request.Namespace) ?? (_ => true);
        bool Matches(MicroVm vm) =>
            visible(vm) &&
            (request.Namespace.Length == 0 || vm.Spec.Namespace == request.Namespace) &&
            (request.Id.Length == 0 || vm.Spec.Id == request.Id);

        var capacity = _options.CurrentValue.WatchBufferEvents;
        InformerSubscription? subscription = null;
        try
        {
            await _informer.Synced.WaitAsync(ct);
            subscription = _informer.Subscribe(capacity, Matches);
            // A client that stopped reading leaves this call blocked in a write (HTTP/2 flow control). Its status can
            // only follow the data already queued, so it is sent when the client reads again; a client that does
            // not read for WatchOverflowGrace after the overflow has its stream reset instead (it then sees Cancelled).
            using var writes = CancellationTokenSource.CreateLinkedTokenSource(ct);
            using var overflowed = subscription.Overflowed.UnsafeRegister(static w => ((CancellationTokenSource)w!).CancelAfter(WatchOverflowGrace), writes);
            await context.WriteResponseHeadersAsync([]);
            foreach (var vm in subscription.Snapshot)
            {
                ThrowIfOverflowed(subscription, capacity);
                await responseStream.WriteAsync(new Proto.WatchMicroVMsResponse { Type = Mapping.Added, Microvm = Mapping.ToProto(vm) }, writes.Token);
            }

            await foreach (var ev in subscription.Events.ReadAllAsync(ct))
            {
                // Events still buffered after an overflow are stale: the client must list again anyway.
                ThrowIfOverflowed(subscription, capacity);
                await responseStream.WriteAsync(new Proto.WatchMicroVMsResponse { Type = Mapping.EventType(ev.Type), Microvm = SharedProtoCache.ToProto(ev.MicroVm) }, writes.Token);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away or the daemon is stopping: end the stream quietly.
        }
        catch (OperationCanceledException) when (subscription?.Overflowed.IsCancellationRequested == true)
        {
            // The write blocked on a client that read nothing for WatchOverflowGrace: the stream is reset, and the
            // status below is what the call ends with on this side (not an unhandled-exception error in the log).
            throw new RpcException(new Status(StatusCode.ResourceExhausted, new InformerOverflowException(capacity).Message));
        }
        catch (InformerOverflowException ex)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, ex.Message));
        }
        finally
        {
            subscription?.Dispose();
        }
    }

    /// <summary>How long a Watch stream that overflowed may stay blocked on a client that reads nothing before it is reset.</summary>
    internal static readonly TimeSpan WatchOverflowGrace = TimeSpan.FromSeconds(30);

    private static void ThrowIfOverflowed(InformerSubscription subscription, int capacity)
    {
        if (subscription.Overflowed.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, new InformerOverflowException(capacity).Message));
        }
    }

    /// <summary>
    /// Streams the VM's serial console log. The file is the one the VM's driver derives from the uid and its runtime
    /// directory; status.console_log_path is only shown to people, never opened (on Kubernetes anyone who may write
    /// the status subresource could point it at /etc/shadow).
    /// </summary>
    public override async Task Logs(Proto.LogsRequest request, IServerStreamWriter<Proto.LogsResponse> responseStream, ServerCallContext context)
    {
        if (request.TailLines < 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"tail_lines must not be negative, got {request.TailLines}"));
        }

        var vm = await _ops.FindAsync(request.Id, request.Namespace, request.Uid, context.CancellationToken);
        if (!_drivers.TryGet(vm.Spec.Provider, out var driver))
        {
            throw new RpcException(new Status(
                StatusCode.FailedPrecondition,
                $"microvm {vm.Key}: provider \"{_drivers.Resolve(vm.Spec.Provider)}\" is not on this node, so it has no console log here"));
        }

        var path = driver.ConsoleLogPath(vm);
        if (!ConsoleLogStreamer.Exists(path))
        {
            throw new RpcException(new Status(
                StatusCode.FailedPrecondition,
                $"microvm {vm.Key} has no console log yet (phase {vm.Status.Phase}); try again once it has started"));
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _lifetime.ApplicationStopping);
        try
        {
            await _logs.StreamAsync(
                path,
                request.TailLines,
                request.Follow,
                chunk => responseStream.WriteAsync(new Proto.LogsResponse { Data = ByteString.CopyFrom(chunk.Span) }, cts.Token),
                cts.Token);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
        }
        catch (FileNotFoundException)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"microvm {vm.Key}: console log {path} is gone (the VM was cleaned up)"));
        }
        catch (Hypercore.HostAccess.NotAPlainFileException refused)
        {
            throw new RpcException(new Status(
                StatusCode.FailedPrecondition,
                $"microvm {vm.Key}: console log refused: {refused.Message}; delete the VM (or remove that file) to get a fresh log"));
        }
    }

    private async Task<Proto.GetMicroVMResponse> LifecycleAsync(Proto.LifecycleRequest request, LifecycleAction action, ServerCallContext context)
    {
        var vm = await _ops.FindAsync(request.Id, request.Namespace, request.Uid, context.CancellationToken);
        var updated = await _ops.SetStateAsync(vm, action, context.CancellationToken);
        return new Proto.GetMicroVMResponse { Microvm = Mapping.ToProto(updated) };
    }
}

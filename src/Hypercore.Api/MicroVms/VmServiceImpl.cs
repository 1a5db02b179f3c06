using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Hypercore.Api.Logs;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Store;
using Microsoft.Extensions.Hosting;
using Proto = Hypercore.Contracts.VmApi;

namespace Hypercore.Api.MicroVms;

/// <summary>
/// vm.services.api.VMService: flintlock-shaped MicroVM API over the desired-state store. Writes only desired
/// state; the reconciler does the rest. Also reachable as HTTP/JSON through the google.api.http routes.
/// </summary>
public sealed class VmServiceImpl : Proto.VMService.VMServiceBase
{
    private readonly MicroVmOperations _ops;
    private readonly ConsoleLogStreamer _logs;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly DriverRegistry _drivers;

    public VmServiceImpl(MicroVmOperations ops, ConsoleLogStreamer logs, IHostApplicationLifetime lifetime, DriverRegistry drivers)
    {
        _ops = ops;
        _logs = logs;
        _lifetime = lifetime;
        _drivers = drivers;
    }

    private IMicroVmStore Store => _ops.Store;

    public override async Task<Proto.CreateMicroVMResponse> Create(Proto.CreateMicroVMRequest request, ServerCallContext context)
    {
        if (request.Microvm is null)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "microvm is required"));
        }

        var errors = new List<string>();
        var spec = Mapping.ToCore(request.Microvm, errors);

        // Request-level metadata (flintlock's CreateMicroVMRequest.metadata) is guest metadata too; the spec's own
        // entries win on a clash.
        if (request.Metadata.Count > 0)
        {
            var merged = new Dictionary<string, string>(request.Metadata);
            foreach (var (k, v) in spec.Metadata)
            {
                merged[k] = v;
            }

            spec = spec with { Metadata = merged };
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
        var all = await Store.ListAsync(NullIfEmpty(request.Namespace), context.CancellationToken);
        var reply = new Proto.ListMicroVMsResponse();
        reply.Microvm.Add(all.Where(v => !request.HasName || request.Name.Length == 0 || v.Spec.Id == request.Name).Select(Mapping.ToProto));
        return reply;
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
    /// Sends the current matching records as ADDED, then every change. The store watch is opened before the list,
    /// so nothing between them is lost; an event for a version already sent is skipped. When the store says events
    /// may have been missed (Resync), every matching record is sent again as MODIFIED and records that vanished
    /// meanwhile as DELETED.
    /// </summary>
    public override async Task Watch(Proto.WatchMicroVMsRequest request, IServerStreamWriter<Proto.WatchMicroVMsResponse> responseStream, ServerCallContext context)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _lifetime.ApplicationStopping);
        var ct = cts.Token;
        bool Matches(MicroVm vm) =>
            (request.Namespace.Length == 0 || vm.Spec.Namespace == request.Namespace) &&
            (request.Id.Length == 0 || vm.Spec.Id == request.Id);

        var sent = new Dictionary<VmKey, MicroVm>();
        async Task SendAsync(string type, MicroVm vm)
        {
            if (type == Mapping.Deleted)
            {
                sent.Remove(vm.Key);
            }
            else
            {
                sent[vm.Key] = vm;
            }

            await responseStream.WriteAsync(new Proto.WatchMicroVMsResponse { Type = type, Microvm = Mapping.ToProto(vm) }, ct);
        }

        async Task RelistAsync(string type)
        {
            var current = (await Store.ListAsync(NullIfEmpty(request.Namespace), ct)).Where(Matches).ToList();
            var gone = sent.Values.Where(old => current.All(c => c.Key != old.Key)).ToList();
            foreach (var vm in current)
            {
                await SendAsync(type, vm);
            }

            foreach (var vm in gone)
            {
                await SendAsync(Mapping.Deleted, vm);
            }
        }

        try
        {
            await using var events = Store.WatchAsync(ct).GetAsyncEnumerator(ct);
            var next = events.MoveNextAsync(); // subscribes before the list below
            await RelistAsync(Mapping.Added);
            while (await next)
            {
                var ev = events.Current;
                if (ev.Type == StoreEventType.Resync)
                {
                    await RelistAsync(Mapping.Modified);
                }
                else if (ev.MicroVm is { } vm && Matches(vm) && Mapping.EventType(ev.Type) is { } type)
                {
                    var duplicate = type != Mapping.Deleted && sent.TryGetValue(vm.Key, out var last) &&
                        last.ResourceVersion == vm.ResourceVersion;
                    var unknownDelete = type == Mapping.Deleted && !sent.ContainsKey(vm.Key);
                    if (!duplicate && !unknownDelete)
                    {
                        await SendAsync(type, vm);
                    }
                }

                next = events.MoveNextAsync();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away or the daemon is stopping: end the stream quietly.
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
    }

    private async Task<Proto.GetMicroVMResponse> LifecycleAsync(Proto.LifecycleRequest request, LifecycleAction action, ServerCallContext context)
    {
        var vm = await _ops.FindAsync(request.Id, request.Namespace, request.Uid, context.CancellationToken);
        var updated = await _ops.SetStateAsync(vm, action, context.CancellationToken);
        return new Proto.GetMicroVMResponse { Microvm = Mapping.ToProto(updated) };
    }

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;
}

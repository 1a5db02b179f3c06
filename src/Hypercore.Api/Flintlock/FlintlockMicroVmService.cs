using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Hypercore.Api.MicroVms;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Operations;
using Fl = Hypercore.Contracts.Flintlock;

namespace Hypercore.Api.Flintlock;

/// <summary>
/// flintlock's microvm.services.api.v1alpha1.MicroVM on the same desired state as vm.services.api.VMService (same
/// store, validation and reconciler, through <see cref="MicroVmOperations"/>), so cluster-api-provider-microvm and
/// flintlock's CLI can drive this node. VMs are addressed by uid, as flintlock does; metadata values are base64 text,
/// as flintlock's clients send them.
/// </summary>
public sealed class FlintlockMicroVmService : Fl.MicroVM.MicroVMBase
{
    private readonly MicroVmOperations _ops;
    private readonly DriverRegistry _drivers;

    public FlintlockMicroVmService(MicroVmOperations ops, DriverRegistry drivers)
    {
        _ops = ops;
        _drivers = drivers;
    }

    public override async Task<Fl.CreateMicroVMResponse> CreateMicroVM(Fl.CreateMicroVMRequest request, ServerCallContext context)
    {
        var (spec, errors) = CreateRequest.Read(request.Microvm, request.Metadata, base64Metadata: true);
        if (errors.Count == 0)
        {
            CreateRequest.RefuseUnservableMetadata(spec, _drivers);
        }

        var created = await _ops.CreateAsync(spec, errors, context.CancellationToken);
        return new Fl.CreateMicroVMResponse { Microvm = ToFlintlock(created) };
    }

    public override async Task<Empty> DeleteMicroVM(Fl.DeleteMicroVMRequest request, ServerCallContext context)
    {
        var vm = await _ops.FindAsync("", "", RequireUid(request.Uid), context.CancellationToken);
        await _ops.DeleteAsync(vm, context.CancellationToken);
        return new Empty();
    }

    public override async Task<Fl.GetMicroVMResponse> GetMicroVM(Fl.GetMicroVMRequest request, ServerCallContext context)
    {
        var vm = await _ops.FindAsync("", "", RequireUid(request.Uid), context.CancellationToken);
        return new Fl.GetMicroVMResponse { Microvm = ToFlintlock(vm) };
    }

    public override async Task<Fl.ListMicroVMsResponse> ListMicroVMs(Fl.ListMicroVMsRequest request, ServerCallContext context)
    {
        var reply = new Fl.ListMicroVMsResponse();
        reply.Microvm.Add((await ListAsync(request, context)).Select(ToFlintlock));
        return reply;
    }

    /// <summary>The current list, one message per MicroVM, then the stream ends (flintlock's stream is not a watch).</summary>
    public override async Task ListMicroVMsStream(Fl.ListMicroVMsRequest request, IServerStreamWriter<Fl.ListMessage> responseStream, ServerCallContext context)
    {
        foreach (var vm in await ListAsync(request, context))
        {
            await responseStream.WriteAsync(new Fl.ListMessage { Microvm = ToFlintlock(vm) }, context.CancellationToken);
        }
    }

    private Task<IReadOnlyList<MicroVm>> ListAsync(Fl.ListMicroVMsRequest request, ServerCallContext context) =>
        _ops.ListAsync(request.Namespace, request.HasName ? request.Name : "", context.CancellationToken);

    /// <summary>
    /// The shared mapping, with the guest metadata base64-encoded again: flintlock's clients read back what they
    /// sent (base64 text), while the record holds the decoded text the guest is served.
    /// </summary>
    private static Contracts.VmApi.MicroVM ToFlintlock(MicroVm vm)
    {
        var proto = Mapping.ToProto(vm);
        foreach (var key in proto.Spec.Metadata.Keys.ToList())
        {
            proto.Spec.Metadata[key] = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(proto.Spec.Metadata[key]));
        }

        return proto;
    }

    private static string RequireUid(string uid) => uid.Length > 0
        ? uid
        : throw new RpcException(new Status(StatusCode.InvalidArgument, "uid is required (the spec.uid returned by CreateMicroVM)"));
}

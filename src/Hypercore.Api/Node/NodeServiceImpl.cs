using Grpc.Core;
using Hypercore.Admission;
using Hypercore.Contracts.VmApi;
using Hypercore.Informers;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Api.Node;

/// <summary>
/// vm.services.api.NodeService: the node's capacity, what its VMs hold and what is free (<c>vis node</c>,
/// <c>GET /v1/node</c>). Read only; the numbers are node-wide, not filtered by the caller's namespaces.
/// </summary>
public sealed class NodeServiceImpl : NodeService.NodeServiceBase
{
    private readonly IServiceProvider _services;

    public NodeServiceImpl(IServiceProvider services) => _services = services;

    public override async Task<GetNodeResponse> GetNode(GetNodeRequest request, ServerCallContext context)
    {
        // Admission is the daemon's (AddAdmission); a host that composes the API without it has no capacity to show.
        var step = _services.GetService<AdmissionStep>()
            ?? throw new RpcException(new Status(StatusCode.FailedPrecondition, "this server does not track node capacity (admission is not configured)"));
        await _services.GetRequiredService<MicroVmInformer>().Synced.WaitAsync(context.CancellationToken);
        var report = step.Report();
        var response = new GetNodeResponse
        {
            Name = report.Node,
            Capacity = Amounts(report.Capacity),
            Reserved = Amounts(report.Reserved),
            Allocatable = Amounts(report.Allocatable),
            Allocated = Amounts(report.Allocated),
            Free = Amounts(report.Free),
            CpuOvercommitRatio = report.CpuOvercommitRatio,
            VmMemoryOverheadMb = report.VmMemoryOverheadMb,
        };
        response.Admitted.AddRange(report.Admitted.Select(k => k.ToString()));
        response.Waiting.AddRange(report.Waiting.Select(k => k.ToString()));
        return response;
    }

    private static NodeResourceAmounts Amounts(NodeResources r) => new() { MemoryMb = r.MemoryMb, Vcpus = r.Vcpus };
}

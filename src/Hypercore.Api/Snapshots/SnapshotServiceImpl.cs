using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Hypercore.Api.MicroVms;
using Hypercore.Api.Security;
using Hypercore.Operations;
using Hypercore.Snapshots;
using Proto = Hypercore.Contracts.VmApi;

namespace Hypercore.Api.Snapshots;

/// <summary>
/// vm.services.api.SnapshotService. The VM is found through the application layer (whose store checks the caller's
/// read access); taking or deleting a snapshot also needs write access to its namespace. Snapshots of namespaces the
/// caller may not see are not listed and are NotFound, so their existence does not leak. The work itself is the
/// node's <see cref="SnapshotManager"/>; a host without it (snapshots not set up) answers FailedPrecondition.
/// </summary>
public sealed class SnapshotServiceImpl : Proto.SnapshotService.SnapshotServiceBase
{
    private readonly MicroVmOperations _ops;
    private readonly SnapshotManager? _snapshots;
    private readonly AccessPolicy? _access;

    public SnapshotServiceImpl(MicroVmOperations ops, SnapshotManager? snapshots = null, AccessPolicy? access = null)
    {
        _ops = ops;
        _snapshots = snapshots;
        _access = access;
    }

    public override async Task<Proto.SnapshotInfo> Snapshot(Proto.SnapshotRequest request, ServerCallContext context)
    {
        var manager = Manager();
        if (SnapshotStore.NameProblem(request.Name) is { } bad)
        {
            throw new InvalidRequestException(bad);
        }

        var vm = await _ops.FindAsync(request.Id, request.Namespace, request.Uid, context.CancellationToken);
        _access?.RequireWrite(vm.Spec.Namespace);
        var manifest = await manager.CreateAsync(vm, request.Name, context.CancellationToken);
        return ToProto(manifest, manager.Store);
    }

    public override Task<Proto.ListSnapshotsResponse> ListSnapshots(Proto.ListSnapshotsRequest request, ServerCallContext context)
    {
        var manager = Manager();
        var visible = Visible(request.Namespace);
        var response = new Proto.ListSnapshotsResponse();
        response.Snapshots.AddRange(manager.List(ns => visible(ns) && (request.Namespace.Length == 0 || ns == request.Namespace))
            .Where(m => request.Name.Length == 0 || m.Name == request.Name)
            .Select(m => ToProto(m, manager.Store)));
        return Task.FromResult(response);
    }

    public override Task<Empty> DeleteSnapshot(Proto.DeleteSnapshotRequest request, ServerCallContext context)
    {
        var manager = Manager();
        var manifest = manager.Get(request.Name, Visible(""));
        _access?.RequireWrite(manifest.Namespace);
        manager.Delete(manifest);
        return Task.FromResult(new Empty());
    }

    public static Proto.SnapshotInfo ToProto(SnapshotManifest m, SnapshotStore store)
    {
        var info = new Proto.SnapshotInfo
        {
            Name = m.Name,
            Namespace = m.Namespace,
            SourceId = m.SourceId,
            SourceUid = m.SourceUid,
            Provider = m.Provider,
            HypervisorVersion = m.HypervisorVersion,
            Machine = m.Machine,
            SizeBytes = m.SizeBytes,
            CreatedAt = Timestamp.FromDateTimeOffset(m.CreatedAt),
            WasRunning = m.WasRunning,
            DurationSeconds = m.DurationSeconds,
            SourceSpec = Mapping.ToProto(m.Spec),
            Path = store.PathOf(m.Name),
        };
        info.Files.AddRange(m.Files.Select(f => new Proto.SnapshotFileInfo { Name = f.Name, SizeBytes = f.Size, Sha256 = f.Sha256 ?? "" }));
        return info;
    }

    private Func<string, bool> Visible(string @namespace) => _access?.NamespacesVisibleToCurrentCaller(@namespace) ?? (_ => true);

    private SnapshotManager Manager() =>
        _snapshots ?? throw new FailedPreconditionException("snapshots are not set up on this node (the host did not call AddSnapshots)");
}

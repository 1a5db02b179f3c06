using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Tests.Fakes;

/// <summary>An in-memory SnapshotService: what the CLI sent, and snapshots a test seeds.</summary>
public sealed class FakeSnapshotService(TimeProvider time) : SnapshotService.SnapshotServiceBase
{
    private readonly Dictionary<string, SnapshotInfo> _snapshots = new(StringComparer.Ordinal);

    public List<object> Received { get; } = [];

    public SnapshotInfo Seed(string name, MicroVMSpec source, string provider = "qemu", long size = 92_000_000)
    {
        var info = new SnapshotInfo
        {
            Name = name, Namespace = source.Namespace, SourceId = source.Id, Provider = provider, SizeBytes = size,
            DurationSeconds = 1.25, CreatedAt = Timestamp.FromDateTimeOffset(time.GetUtcNow().AddMinutes(-3)), SourceSpec = source,
        };
        lock (_snapshots)
        {
            _snapshots[name] = info;
        }

        return info;
    }

    public override Task<SnapshotInfo> Snapshot(SnapshotRequest request, ServerCallContext context)
    {
        lock (_snapshots)
        {
            Received.Add(request);
            if (_snapshots.ContainsKey(request.Name))
            {
                throw new RpcException(new Status(StatusCode.AlreadyExists, $"snapshot \"{request.Name}\" already exists"));
            }
        }

        var spec = new MicroVMSpec { Id = request.Id, Namespace = request.Namespace.Length > 0 ? request.Namespace : "default", Kernel = new Kernel { Image = "default" } };
        return Task.FromResult(Seed(request.Name, spec));
    }

    public override Task<ListSnapshotsResponse> ListSnapshots(ListSnapshotsRequest request, ServerCallContext context)
    {
        lock (_snapshots)
        {
            Received.Add(request);
            var reply = new ListSnapshotsResponse();
            reply.Snapshots.Add(_snapshots.Values
                .Where(s => (request.Name.Length == 0 || s.Name == request.Name) && (request.Namespace.Length == 0 || s.Namespace == request.Namespace))
                .OrderBy(s => s.Name, StringComparer.Ordinal));
            return Task.FromResult(reply);
        }
    }

    public override Task<Empty> DeleteSnapshot(DeleteSnapshotRequest request, ServerCallContext context)
    {
        lock (_snapshots)
        {
            Received.Add(request);
            return _snapshots.Remove(request.Name)
                ? Task.FromResult(new Empty())
                : throw new RpcException(new Status(StatusCode.NotFound, $"snapshot \"{request.Name}\" not found"));
        }
    }
}

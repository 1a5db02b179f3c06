using Grpc.Core;

// The generated method definitions (Grpc.Tools keeps them private) exposed for Hypercore.Api's method tables, which
// register each method with gRPC without calling the generated BindService: its ServiceBinderBase.AddMethod<,> calls
// are generic virtual calls that Native AOT resolves and builds at run time, a fifth of the daemon's start CPU
// (bench/NOTES.md, grpcbind). Hypercore.Api.Tests' GrpcMethodTableTests fail when a method here is missing or differs
// from what BindService binds.

namespace Hypercore.Contracts.VmApi
{
    public static partial class VMService
    {
        /// <summary>The service's methods as the generated BindService binds them.</summary>
        public static class Methods
        {
            public static Method<CreateMicroVMRequest, CreateMicroVMResponse> Create => __Method_Create;

            public static Method<DeleteMicroVMRequest, Google.Protobuf.WellKnownTypes.Empty> Delete => __Method_Delete;

            public static Method<GetMicroVMRequest, GetMicroVMResponse> Get => __Method_Get;

            public static Method<ListMicroVMsRequest, ListMicroVMsResponse> List => __Method_List;

            public static Method<ListMicroVMsRequest, ListMessage> ListVMsStream => __Method_ListVMsStream;

            public static Method<LifecycleRequest, GetMicroVMResponse> Start => __Method_Start;

            public static Method<LifecycleRequest, GetMicroVMResponse> Stop => __Method_Stop;

            public static Method<LifecycleRequest, GetMicroVMResponse> Pause => __Method_Pause;

            public static Method<LifecycleRequest, GetMicroVMResponse> Resume => __Method_Resume;

            public static Method<WatchMicroVMsRequest, WatchMicroVMsResponse> Watch => __Method_Watch;

            public static Method<LogsRequest, LogsResponse> Logs => __Method_Logs;
        }
    }
}

namespace Hypercore.Contracts.Vistara
{
    public static partial class Vistara
    {
        /// <summary>The service's methods as the generated BindService binds them.</summary>
        public static class Methods
        {
            public static Method<CreateMicroVMRequest, CreateMicroVMResponse> CreateMicroVM => __Method_CreateMicroVM;

            public static Method<DeleteMicroVMRequest, DeleteMicroVMResponse> DeleteMicroVM => __Method_DeleteMicroVM;

            public static Method<GetMicroVMRequest, GetMicroVMResponse> GetMicroVM => __Method_GetMicroVM;

            public static Method<ListMicroVMRequest, ListMicroVMResponse> ListMicroVM => __Method_ListMicroVM;
        }
    }
}

namespace Hypercore.Contracts.Flintlock
{
    public static partial class MicroVM
    {
        /// <summary>The service's methods as the generated BindService binds them.</summary>
        public static class Methods
        {
            public static Method<CreateMicroVMRequest, CreateMicroVMResponse> CreateMicroVM => __Method_CreateMicroVM;

            public static Method<DeleteMicroVMRequest, Google.Protobuf.WellKnownTypes.Empty> DeleteMicroVM => __Method_DeleteMicroVM;

            public static Method<GetMicroVMRequest, GetMicroVMResponse> GetMicroVM => __Method_GetMicroVM;

            public static Method<ListMicroVMsRequest, ListMicroVMsResponse> ListMicroVMs => __Method_ListMicroVMs;

            public static Method<ListMicroVMsRequest, ListMessage> ListMicroVMsStream => __Method_ListMicroVMsStream;
        }
    }
}

namespace Hypercore.Contracts.VmApi
{
    public static partial class ImageService
    {
        /// <summary>The service's methods as the generated BindService binds them.</summary>
        public static class Methods
        {
            public static Method<ListImagesRequest, ListImagesResponse> List => __Method_List;

            public static Method<RemoveImageRequest, RemoveImageResponse> Remove => __Method_Remove;

            public static Method<PruneImagesRequest, PruneImagesResponse> Prune => __Method_Prune;
        }
    }
}

namespace Hypercore.Contracts.VmApi
{
    public static partial class NodeService
    {
        /// <summary>The service's methods as the generated BindService binds them.</summary>
        public static class Methods
        {
            public static Method<GetNodeRequest, GetNodeResponse> GetNode => __Method_GetNode;
        }
    }
}

namespace Hypercore.Contracts.VmApi
{
    public static partial class SnapshotService
    {
        /// <summary>The service's methods as the generated BindService binds them.</summary>
        public static class Methods
        {
            public static Method<SnapshotRequest, SnapshotInfo> Snapshot => __Method_Snapshot;

            public static Method<ListSnapshotsRequest, ListSnapshotsResponse> ListSnapshots => __Method_ListSnapshots;

            public static Method<DeleteSnapshotRequest, Google.Protobuf.WellKnownTypes.Empty> DeleteSnapshot => __Method_DeleteSnapshot;
        }
    }
}

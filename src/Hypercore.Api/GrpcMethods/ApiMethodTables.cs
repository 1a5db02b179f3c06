using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.Versioning;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection;
using Hypercore.Api.HttpJson;
using Hypercore.Api.Flintlock;
using Hypercore.Api.Images;
using Hypercore.Api.MicroVms;
using Hypercore.Api.Node;
using Hypercore.Api.Snapshots;
using Hypercore.Api.Vistara;
using Hypercore.Contracts.VmApi;
using Fl = Hypercore.Contracts.Flintlock;
using V1 = Grpc.Reflection.V1;
using V1Alpha = Grpc.Reflection.V1Alpha;
using VistaraProto = Hypercore.Contracts.Vistara;

namespace Hypercore.Api.GrpcMethods;

/// <summary>
/// The method table of every gRPC service <see cref="HypercoreApiExtensions.MapHypercoreApi"/> maps, written out as the
/// generated BindService would bind them, with each method's google.api.http rule from protos/. GrpcMethodTableTests
/// compare them with BindService and the descriptors: a method added to a .proto fails that test until it is added here.
/// </summary>
internal static class ApiMethodTables
{
    private static readonly GrpcMethodTable<VmServiceImpl> VmService = new GrpcMethodTable<VmServiceImpl>()
        .Unary(VMService.Methods.Create, static (s, r, c) => s.Create(r, c), Http.Post("/v1/microvms", "*"))
        .Unary(VMService.Methods.Delete, static (s, r, c) => s.Delete(r, c), Http.Delete("/v1/microvms/{id}"))
        .Unary(VMService.Methods.Get, static (s, r, c) => s.Get(r, c), Http.Get("/v1/microvms/{id}"))
        .Unary(VMService.Methods.List, static (s, r, c) => s.List(r, c), Http.Get("/v1/microvms"))
        .ServerStreaming(VMService.Methods.ListVMsStream, static (s, r, w, c) => s.ListVMsStream(r, w, c))
        .Unary(VMService.Methods.Start, static (s, r, c) => s.Start(r, c), Http.Post("/v1/microvms/{id}:start", "*"))
        .Unary(VMService.Methods.Stop, static (s, r, c) => s.Stop(r, c), Http.Post("/v1/microvms/{id}:stop", "*"))
        .Unary(VMService.Methods.Pause, static (s, r, c) => s.Pause(r, c), Http.Post("/v1/microvms/{id}:pause", "*"))
        .Unary(VMService.Methods.Resume, static (s, r, c) => s.Resume(r, c), Http.Post("/v1/microvms/{id}:resume", "*"))
        .ServerStreaming(VMService.Methods.Watch, static (s, r, w, c) => s.Watch(r, w, c), Http.Get("/v1/microvms:watch"))
        .ServerStreaming(VMService.Methods.Logs, static (s, r, w, c) => s.Logs(r, w, c), Http.Get("/v1/microvms/{id}/logs"));

    private static readonly GrpcMethodTable<VistaraServiceImpl> Vistara = new GrpcMethodTable<VistaraServiceImpl>()
        .Unary(VistaraProto.Vistara.Methods.CreateMicroVM, static (s, r, c) => s.CreateMicroVM(r, c))
        .Unary(VistaraProto.Vistara.Methods.DeleteMicroVM, static (s, r, c) => s.DeleteMicroVM(r, c))
        .Unary(VistaraProto.Vistara.Methods.GetMicroVM, static (s, r, c) => s.GetMicroVM(r, c))
        .Unary(VistaraProto.Vistara.Methods.ListMicroVM, static (s, r, c) => s.ListMicroVM(r, c));

    private static readonly GrpcMethodTable<FlintlockMicroVmService> Flintlock = new GrpcMethodTable<FlintlockMicroVmService>()
        .Unary(Fl.MicroVM.Methods.CreateMicroVM, static (s, r, c) => s.CreateMicroVM(r, c), Http.Post("/v1alpha1/microvm", "microvm"))
        .Unary(Fl.MicroVM.Methods.DeleteMicroVM, static (s, r, c) => s.DeleteMicroVM(r, c), Http.Delete("/v1alpha1/microvm/{uid}"))
        .Unary(Fl.MicroVM.Methods.GetMicroVM, static (s, r, c) => s.GetMicroVM(r, c), Http.Get("/v1alpha1/microvm/{uid}"))
        .Unary(Fl.MicroVM.Methods.ListMicroVMs, static (s, r, c) => s.ListMicroVMs(r, c), Http.Get("/v1alpha1/microvm"))
        .ServerStreaming(Fl.MicroVM.Methods.ListMicroVMsStream, static (s, r, w, c) => s.ListMicroVMsStream(r, w, c));

    private static readonly GrpcMethodTable<ImageServiceImpl>? Images = OperatingSystem.IsLinux() ? ImageTable() : null;

    private static readonly GrpcMethodTable<NodeServiceImpl> Node = new GrpcMethodTable<NodeServiceImpl>()
        .Unary(NodeService.Methods.GetNode, static (s, r, c) => s.GetNode(r, c), Http.Get("/v1/node"));

    private static readonly GrpcMethodTable<SnapshotServiceImpl> Snapshots = new GrpcMethodTable<SnapshotServiceImpl>()
        .Unary(SnapshotService.Methods.Snapshot, static (s, r, c) => s.Snapshot(r, c), Http.Post("/v1/microvms/{id}:snapshot", "*"))
        .Unary(SnapshotService.Methods.ListSnapshots, static (s, r, c) => s.ListSnapshots(r, c), Http.Get("/v1/snapshots"))
        .Unary(SnapshotService.Methods.DeleteSnapshot, static (s, r, c) => s.DeleteSnapshot(r, c), Http.Delete("/v1/snapshots/{name}"));

    private static readonly GrpcMethodTable<ReflectionServiceImpl> ReflectionV1Alpha = new GrpcMethodTable<ReflectionServiceImpl>()
        .DuplexStreaming(ThirdPartyMethods.ReflectionV1Alpha(null), static (s, r, w, c) => s.ServerReflectionInfo(r, w, c));

    private static readonly GrpcMethodTable<ReflectionV1ServiceImpl> ReflectionV1 = new GrpcMethodTable<ReflectionV1ServiceImpl>()
        .DuplexStreaming(ThirdPartyMethods.ReflectionV1(null), static (s, r, w, c) => s.ServerReflectionInfo(r, w, c));

    /// <summary>The table of <typeparamref name="TService"/>; null for a service this API does not map.</summary>
    public static GrpcMethodTable<TService>? For<[DynamicallyAccessedMembers(HttpJsonGateway.ServiceAccessibility)] TService>()
        where TService : class => Cache<TService>.Table;

    private static object? Find(Type service) =>
        service == typeof(VmServiceImpl) ? VmService
        : service == typeof(VistaraServiceImpl) ? Vistara
        : service == typeof(FlintlockMicroVmService) ? Flintlock
        : service == typeof(ImageServiceImpl) ? Images
        : service == typeof(NodeServiceImpl) ? Node
        : service == typeof(SnapshotServiceImpl) ? Snapshots
        : service == typeof(ReflectionServiceImpl) ? ReflectionV1Alpha
        : service == typeof(ReflectionV1ServiceImpl) ? ReflectionV1
        : null;

    [SupportedOSPlatform("linux")]
    private static GrpcMethodTable<ImageServiceImpl> ImageTable() => new GrpcMethodTable<ImageServiceImpl>()
        .Unary(ImageService.Methods.List, static (s, r, c) => s.List(r, c), Http.Get("/v1/images"))
        .Unary(ImageService.Methods.Remove, static (s, r, c) => s.Remove(r, c), Http.Delete("/v1/images/{image}"))
        .Unary(ImageService.Methods.Prune, static (s, r, c) => s.Prune(r, c), Http.Post("/v1/images:prune", "*"));

    /// <summary>
    /// grpc.health.v1.Health as Grpc.AspNetCore.HealthChecks maps it: its service class is internal, so the table is
    /// built for whatever class derives from the generated base (the calls go through the base's virtual methods, as
    /// the delegates BindService hands out do).
    /// </summary>
    private static GrpcMethodTable<TService> Health<[DynamicallyAccessedMembers(HttpJsonGateway.ServiceAccessibility)] TService>()
        where TService : class => new GrpcMethodTable<TService>()
        .Unary(ThirdPartyMethods.HealthCheck(null), static (s, r, c) => ((Grpc.Health.V1.Health.HealthBase)(object)s).Check(r, c))
        .ServerStreaming(ThirdPartyMethods.HealthWatch(null), static (s, r, w, c) => ((Grpc.Health.V1.Health.HealthBase)(object)s).Watch(r, w, c));

    private static class Cache<[DynamicallyAccessedMembers(HttpJsonGateway.ServiceAccessibility)] TService>
        where TService : class
    {
        public static readonly GrpcMethodTable<TService>? Table = (GrpcMethodTable<TService>?)Find(typeof(TService))
            ?? (typeof(Grpc.Health.V1.Health.HealthBase).IsAssignableFrom(typeof(TService)) ? Health<TService>() : null);
    }

    /// <summary>
    /// The generated method definitions of services in other packages (Grpc.HealthCheck, Grpc.Reflection), private
    /// there: read with unsafe accessors (compiled to a plain field load, also under Native AOT) so that the very
    /// objects BindService would bind are registered.
    /// </summary>
    private static class ThirdPartyMethods
    {
        [UnsafeAccessor(UnsafeAccessorKind.StaticField, Name = "__Method_Check")]
        public static extern ref readonly Method<HealthCheckRequest, HealthCheckResponse> HealthCheck(
            [UnsafeAccessorType("Grpc.Health.V1.Health, Grpc.HealthCheck")] object? service);

        [UnsafeAccessor(UnsafeAccessorKind.StaticField, Name = "__Method_Watch")]
        public static extern ref readonly Method<HealthCheckRequest, HealthCheckResponse> HealthWatch(
            [UnsafeAccessorType("Grpc.Health.V1.Health, Grpc.HealthCheck")] object? service);

        [UnsafeAccessor(UnsafeAccessorKind.StaticField, Name = "__Method_ServerReflectionInfo")]
        public static extern ref readonly Method<V1Alpha.ServerReflectionRequest, V1Alpha.ServerReflectionResponse> ReflectionV1Alpha(
            [UnsafeAccessorType("Grpc.Reflection.V1Alpha.ServerReflection, Grpc.Reflection")] object? service);

        [UnsafeAccessor(UnsafeAccessorKind.StaticField, Name = "__Method_ServerReflectionInfo")]
        public static extern ref readonly Method<V1.ServerReflectionRequest, V1.ServerReflectionResponse> ReflectionV1(
            [UnsafeAccessorType("Grpc.Reflection.V1.ServerReflection, Grpc.Reflection")] object? service);
    }
}

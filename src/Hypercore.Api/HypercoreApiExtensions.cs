using Hypercore.Api.Errors;
using Hypercore.Api.Flintlock;
using Hypercore.Api.HealthChecks;
using Hypercore.Api.HttpJson;
using Hypercore.Api.Logs;
using Hypercore.Api.MicroVms;
using Hypercore.Api.Node;
using Hypercore.Api.Vistara;
using Hypercore.Composition;
using Hypercore.Informers;
using Hypercore.Operations;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Hypercore.Api;

public static class HypercoreApiExtensions
{
    /// <summary>
    /// Adds the node API: gRPC services vm.services.api.VMService, flintlock's microvm.services.api.v1alpha1.MicroVM
    /// and vistara.Vistara, their HTTP/JSON routes (the AOT-safe <see cref="HttpJsonGateway"/>, mapped by <see cref="MapHypercoreApi"/>),
    /// gRPC reflection and the standard gRPC health service (healthy while the store answers).
    /// The handlers call the application layer (<see cref="MicroVmOperations"/>, configured with
    /// <see cref="MicroVmOperationsServiceCollectionExtensions.AddMicroVmOperations"/>) and follow the shared informer;
    /// both need an <see cref="Store.IMicroVmStore"/> and a <see cref="Drivers.DriverRegistry"/> registered by the host.
    /// </summary>
    public static IServiceCollection AddHypercoreApi(this IServiceCollection services, Action<HypercoreApiOptions>? configure = null)
    {
        var options = services.AddOptions<HypercoreApiOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        // Factories, not implementation types: Hypercore.Composition.ServiceFactories says why.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<HypercoreApiOptions>, HypercoreApiOptionsValidator>(_ => new HypercoreApiOptionsValidator()));
        services.TryAddSingleton(TimeProvider.System);
        services.AddMicroVmOperations();
        services.AddMicroVmInformer();
        services.TryAddSingleton(sp => new ConsoleLogStreamer(sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<IOptionsMonitor<HypercoreApiOptions>>()));
        services.TryAddSingleton(sp => new StoreExceptionInterceptor(sp.LoggerFor<StoreExceptionInterceptor>()));

        // Issue 15 (alloc7): the two MicroVM services as singletons (they hold only singletons and keep nothing per call).
        // gRPC's activator, and the HTTP/JSON gateway through it, then takes them from DI instead of constructing one per
        // call with ActivatorUtilities (reflection under Native AOT; an instance and its argument array per call).
        services.TryAddSingleton(sp => new VmServiceImpl(
            sp.GetRequiredService<MicroVmOperations>(), sp.GetRequiredService<MicroVmInformer>(), sp.GetRequiredService<ConsoleLogStreamer>(),
            sp.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>(), sp.GetRequiredService<IOptionsMonitor<HypercoreApiOptions>>(),
            sp.GetRequiredService<Drivers.DriverRegistry>(), sp.GetService<Security.AccessPolicy>()));
        services.TryAddSingleton(sp => new FlintlockMicroVmService(sp.GetRequiredService<MicroVmOperations>(), sp.GetRequiredService<Drivers.DriverRegistry>()));

        // The error mapping (StoreExceptionInterceptor) is not a gRPC interceptor: the method tables call it around each
        // handler (GrpcMethodEntry.AddTo), without gRPC's interceptor pipeline on every call (issue 15, call12).
        services.AddGrpc(o => o.EnableDetailedErrors = false);
        Reflection.ReflectedServices.Register(services);
        services.AddGrpcHealthChecks().AddCheck<StoreHealthCheck>("store");
        GrpcMethods.GrpcMethodBinding.Register(services);
        return services;
    }

    /// <summary>
    /// Maps the services with their HTTP/JSON routes (the google.api.http options in protos/), reflection (unless
    /// <paramref name="reflection"/> is false) and health. gRPC needs an HTTP/2 endpoint; the JSON routes an HTTP/1.1 one.
    /// </summary>
    public static IEndpointRouteBuilder MapHypercoreApi(this IEndpointRouteBuilder endpoints, bool reflection = true)
    {
        endpoints.MapGrpcService<VmServiceImpl>();
        endpoints.MapHttpJson<VmServiceImpl>(static () => Contracts.VmApi.VMService.Descriptor);
        endpoints.MapGrpcService<VistaraServiceImpl>();
        endpoints.MapGrpcService<FlintlockMicroVmService>();
        endpoints.MapHttpJson<FlintlockMicroVmService>(static () => Contracts.Flintlock.MicroVM.Descriptor);
        if (OperatingSystem.IsLinux())
        {
            endpoints.MapGrpcService<Images.ImageServiceImpl>(); // images (issue 11)
            endpoints.MapHttpJson<Images.ImageServiceImpl>(static () => Contracts.VmApi.ImageService.Descriptor);
        }
        endpoints.MapGrpcService<NodeServiceImpl>(); // Kubernetes issue 13: node capacity (vis node)
        endpoints.MapHttpJson<NodeServiceImpl>(static () => Contracts.VmApi.NodeService.Descriptor);
        endpoints.MapGrpcService<Snapshots.SnapshotServiceImpl>(); // snapshots
        endpoints.MapHttpJson<Snapshots.SnapshotServiceImpl>(static () => Contracts.VmApi.SnapshotService.Descriptor);
        endpoints.MapGrpcHealthChecksService();
        if (reflection)
        {
            var reflected = endpoints.ServiceProvider.GetRequiredService<Reflection.ReflectedServices>();
            reflected.Add(static () => Contracts.VmApi.VMService.Descriptor);
            reflected.Add(static () => Contracts.Vistara.Vistara.Descriptor);
            reflected.Add(static () => Contracts.Flintlock.MicroVM.Descriptor);
            if (OperatingSystem.IsLinux())
            {
                reflected.Add(static () => Contracts.VmApi.ImageService.Descriptor);
            }

            reflected.Add(static () => Contracts.VmApi.NodeService.Descriptor);
            reflected.Add(static () => Contracts.VmApi.SnapshotService.Descriptor);
            reflected.Add(static () => Grpc.Health.V1.Health.Descriptor);
            reflected.Add(static () => Grpc.Reflection.V1Alpha.ServerReflection.Descriptor);
            reflected.Add(static () => Grpc.Reflection.V1.ServerReflection.Descriptor);
            endpoints.MapGrpcService<Grpc.Reflection.ReflectionServiceImpl>();
            endpoints.MapGrpcService<Grpc.Reflection.ReflectionV1ServiceImpl>();
        }

        return endpoints;
    }
}

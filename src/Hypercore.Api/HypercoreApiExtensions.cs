using Hypercore.Api.Errors;
using Hypercore.Api.HealthChecks;
using Hypercore.Api.Images;
using Hypercore.Api.Logs;
using Hypercore.Api.MicroVms;
using Hypercore.Api.Vistara;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Hypercore.Api;

public static class HypercoreApiExtensions
{
    /// <summary>
    /// Adds the node API: gRPC services vm.services.api.VMService and vistara.Vistara with HTTP/JSON transcoding,
    /// gRPC reflection and the standard gRPC health service (healthy while the store answers).
    /// Needs an <see cref="Store.IMicroVmStore"/> and a <see cref="Drivers.DriverRegistry"/> registered by the host.
    /// </summary>
    public static IServiceCollection AddHypercoreApi(this IServiceCollection services, Action<HypercoreApiOptions>? configure = null)
    {
        var options = services.AddOptions<HypercoreApiOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<HypercoreApiOptions>, HypercoreApiOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IMicroVmIdGenerator, RandomMicroVmIdGenerator>();
        services.TryAddSingleton<ImageCatalog>();
        services.TryAddSingleton<ConsoleLogStreamer>();
        services.TryAddSingleton<MicroVmOperations>();
        services.TryAddSingleton<StoreExceptionInterceptor>();

        services.AddGrpc(o =>
        {
            o.Interceptors.Add<StoreExceptionInterceptor>();
            o.EnableDetailedErrors = false;
        }).AddJsonTranscoding();
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks().AddCheck<StoreHealthCheck>("store");
        return services;
    }

    /// <summary>
    /// Maps both services, reflection (unless <paramref name="reflection"/> is false) and health. gRPC needs an HTTP/2
    /// endpoint; the JSON routes an HTTP/1.1 one.
    /// </summary>
    public static IEndpointRouteBuilder MapHypercoreApi(this IEndpointRouteBuilder endpoints, bool reflection = true)
    {
        endpoints.MapGrpcService<VmServiceImpl>();
        endpoints.MapGrpcService<VistaraServiceImpl>();
        if (reflection)
        {
            endpoints.MapGrpcReflectionService();
        }

        endpoints.MapGrpcHealthChecksService();
        return endpoints;
    }
}

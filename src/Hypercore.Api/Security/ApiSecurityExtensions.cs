using Grpc.AspNetCore.Server;
using Hypercore.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Security;

public static class ApiSecurityExtensions
{
    /// <summary>
    /// Authentication and authorization for every API service. Call after the store is registered: the registered
    /// <see cref="IMicroVmStore"/> is wrapped in an <see cref="AuthorizingMicroVmStore"/> (which lets the reconciler,
    /// having no caller, through). Pair with <see cref="UseApiSecurity"/> before mapping endpoints.
    /// </summary>
    public static IServiceCollection AddApiSecurity(this IServiceCollection services, Action<ApiSecurityOptions> configure)
    {
        services.AddOptions<ApiSecurityOptions>().Configure(configure);
        services.AddOptions<GrpcServiceOptions>().Configure<IOptions<ApiSecurityOptions>>((grpc, security) =>
            grpc.MaxReceiveMessageSize = (int)Math.Min(int.MaxValue, security.Value.MaxRequestBodyBytes));
        services.AddSingleton(sp => new AccessPolicy(sp.GetRequiredService<IOptions<ApiSecurityOptions>>().Value.Identities));

        var store = services.LastOrDefault(d => d.ServiceType == typeof(IMicroVmStore))
            ?? throw new InvalidOperationException("AddApiSecurity needs the store registered first");
        services.Remove(store);
        services.AddSingleton<IMicroVmStore>(sp => new AuthorizingMicroVmStore(Resolve(sp, store), sp.GetRequiredService<AccessPolicy>()));
        return services;
    }

    /// <summary>Puts <see cref="ApiSecurityMiddleware"/> first in the request pipeline.</summary>
    public static IApplicationBuilder UseApiSecurity(this IApplicationBuilder app) => app.UseMiddleware<ApiSecurityMiddleware>();

    private static IMicroVmStore Resolve(IServiceProvider sp, ServiceDescriptor descriptor) => descriptor switch
    {
        { ImplementationInstance: IMicroVmStore instance } => instance,
        { ImplementationFactory: { } factory } => (IMicroVmStore)factory(sp),
        { ImplementationType: { } type } => (IMicroVmStore)ActivatorUtilities.CreateInstance(sp, type),
        _ => throw new InvalidOperationException($"cannot wrap the store registration {descriptor}"),
    };
}

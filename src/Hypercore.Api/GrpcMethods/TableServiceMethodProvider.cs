using System.Diagnostics.CodeAnalysis;
using Grpc.AspNetCore.Server.Model;
using Hypercore.Api.Errors;
using Hypercore.Api.HttpJson;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Hypercore.Api.GrpcMethods;

/// <summary>
/// Finds a gRPC service's methods in <see cref="ApiMethodTables"/> instead of calling its generated BindService (what
/// Grpc.AspNetCore's own provider does). The endpoints are the same: route, method, gRPC method metadata, POST with CORS
/// preflight (GrpcMethodTableTests compare them). Each handler is called through <see cref="StoreExceptionInterceptor"/>.
/// </summary>
internal sealed class TableServiceMethodProvider<[DynamicallyAccessedMembers(HttpJsonGateway.ServiceAccessibility)] TService>(StoreExceptionInterceptor errors)
    : IServiceMethodProvider<TService>
    where TService : class
{
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<TService> context)
    {
        var table = ApiMethodTables.For<TService>()
            ?? throw new InvalidOperationException($"gRPC service {typeof(TService)} has no method table: add it to Hypercore.Api's ApiMethodTables (AddHypercoreApi does not bind services through their generated BindService)");
        foreach (var method in table.Methods)
        {
            // What Grpc.AspNetCore's binder adds besides the attributes of the class and method (none of ours has one
            // that ASP.NET Core reads: GrpcMethodTableTests check it): gRPC is POST, and accepts CORS preflight.
            method.AddTo(context, [new HttpMethodMetadata(["POST"], acceptCorsPreflight: true)], errors);
        }
    }
}

/// <summary>Binds every gRPC service through <see cref="ApiMethodTables"/>.</summary>
internal static class GrpcMethodBinding
{
    /// <summary>
    /// Replaces Grpc.AspNetCore's open-generic provider (the reflection binder over BindService) with this one, for
    /// every service mapped with MapGrpcService; call after AddGrpc and AddGrpcHealthChecks.
    /// </summary>
    public static void Register(IServiceCollection services)
    {
        services.RemoveAll(typeof(IServiceMethodProvider<>));
        services.AddSingleton(typeof(IServiceMethodProvider<>), typeof(TableServiceMethodProvider<>));
    }
}

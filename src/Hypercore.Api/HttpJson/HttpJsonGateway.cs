using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Hypercore.Api.HttpJson;

/// <summary>
/// The HTTP/JSON routes of the gRPC services, read from the google.api.http options in their descriptors: one endpoint
/// per URL template, which picks the method by verb (any other verb: 404, as transcoding answered). The call goes to
/// the same service class, created by gRPC's own activator, through the same interceptors, behind the same security
/// middleware, so HTTP/JSON and gRPC cannot differ in what they allow. Replaces ASP.NET Core's JSON transcoding, which
/// Native AOT cannot run (its System.Text.Json converters are built by reflection at run time).
/// </summary>
public static class HttpJsonGateway
{
    /// <summary>Types an Any may hold in a request or answer: CreateMicroVMRequest.metadata holds StringValue/BytesValue.</summary>
    internal static readonly TypeRegistry TypeRegistry = TypeRegistry.FromMessages(StringValue.Descriptor, BytesValue.Descriptor);

    /// <summary>What gRPC's service activator needs of a service type (the annotation MapGrpcService carries).</summary>
    internal const System.Diagnostics.CodeAnalysis.DynamicallyAccessedMemberTypes ServiceAccessibility =
        System.Diagnostics.CodeAnalysis.DynamicallyAccessedMemberTypes.PublicConstructors |
        System.Diagnostics.CodeAnalysis.DynamicallyAccessedMemberTypes.PublicMethods |
        System.Diagnostics.CodeAnalysis.DynamicallyAccessedMemberTypes.NonPublicMethods;

    /// <summary>
    /// Maps the HTTP rules of <typeparamref name="TService"/>, as its method table in <see cref="GrpcMethods.ApiMethodTables"/>
    /// writes them (GrpcMethodTableTests hold them equal to the google.api.http options in its descriptor, which is
    /// read only when a route is first called).
    /// </summary>
    public static IEndpointRouteBuilder MapHttpJson<[System.Diagnostics.CodeAnalysis.DynamicallyAccessedMembers(ServiceAccessibility)] TService>(this IEndpointRouteBuilder endpoints,
        Func<Google.Protobuf.Reflection.ServiceDescriptor> descriptor)
        where TService : class
    {
        var methods = GrpcMethods.ApiMethodTables.For<TService>()
            ?? throw new InvalidOperationException($"{typeof(TService)} has no method table in Hypercore.Api's ApiMethodTables");
        var table = HttpJsonTable.Of(endpoints);
        foreach (var method in methods.Methods)
        {
            if (method.Http is not { } rule)
            {
                continue;
            }

            var name = method.Method.ServiceName + "." + method.Method.Name;
            var methodName = method.Method.Name;
            var entry = new HttpJsonMethodEntry(name, () => descriptor().FindMethodByName(methodName)
                ?? throw new InvalidOperationException($"{descriptor().FullName} has no method {methodName}"), method.CreateHttpJsonInvoker());
            foreach (var binding in new[] { rule }.Concat(rule.AdditionalBindings))
            {
                var route = HttpJsonRoute.From(entry, binding);
                if (table.Add(route))
                {
                    endpoints.Map(route.Template, table.Dispatch(route.Template)).WithDisplayName("HTTP/JSON " + route.Template);
                }
            }
        }

        return endpoints;
    }
}

/// <summary>Routes by template (one endpoint each) and verb; kept per route builder so two hosts in a process do not share it.</summary>
internal sealed class HttpJsonTable
{
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<IEndpointRouteBuilder, HttpJsonTable> Tables = [];

    private readonly Dictionary<string, Dictionary<string, HttpJsonRoute>> _byTemplate = new(StringComparer.Ordinal);

    public static HttpJsonTable Of(IEndpointRouteBuilder endpoints) => Tables.GetValue(endpoints, _ => new HttpJsonTable());

    /// <summary>Adds the route; true when its template is new (needs an endpoint).</summary>
    public bool Add(HttpJsonRoute route)
    {
        var fresh = !_byTemplate.TryGetValue(route.Template, out var verbs);
        verbs ??= _byTemplate[route.Template] = new Dictionary<string, HttpJsonRoute>(StringComparer.OrdinalIgnoreCase);
        if (!verbs.TryAdd(route.Verb, route))
        {
            throw new InvalidOperationException($"HTTP/JSON: {route.Verb} {route.Template} is mapped twice ({verbs[route.Verb].Name} and {route.Name})");
        }

        return fresh;
    }

    public RequestDelegate Dispatch(string template)
    {
        var verbs = _byTemplate[template];
        return http =>
        {
            if (!verbs.TryGetValue(http.Request.Method, out var route))
            {
                http.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            }

            return route.Invoker.InvokeAsync(http, route);
        };
    }
}

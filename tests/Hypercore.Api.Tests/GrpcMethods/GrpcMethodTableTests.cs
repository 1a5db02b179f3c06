using Google.Api;
using Google.Protobuf.Reflection;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Hypercore.Api.Flintlock;
using Hypercore.Api.GrpcMethods;
using Hypercore.Api.HttpJson;
using Hypercore.Api.Images;
using Hypercore.Api.MicroVms;
using Hypercore.Api.Node;
using Hypercore.Api.Snapshots;
using Hypercore.Api.Vistara;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServiceDescriptor = Google.Protobuf.Reflection.ServiceDescriptor;

namespace Hypercore.Api.Tests.GrpcMethods;

/// <summary>
/// The method tables that replace the generated BindService (Native AOT start CPU, bench/NOTES.md grpcbind) must bind
/// exactly what BindService binds: same routes, methods, method types, generated Method objects, endpoint metadata,
/// and the same google.api.http rules as the descriptors.
/// </summary>
public sealed class GrpcMethodTableTests
{
    // Attributes Grpc.AspNetCore's binder copies from the service class and method into endpoint metadata that nothing
    // in ASP.NET Core reads: the compiler's own (async state machine, nullable context, debugger hints), the platform
    // analyzer's ([SupportedOSPlatform] on the image service) and the attribute the binder itself uses to find BindService. Any other attribute (say [Authorize] or [EnableCors] on a
    // service) would change behaviour, and this test fails until the table provider carries it too.
    private static readonly string[] InertAttributeNamespaces = ["System.Runtime.CompilerServices", "System.Runtime.Versioning", "System.Diagnostics"];

    [Test]
    public async Task MapHypercoreApi_GrpcEndpoints_SameAsGeneratedBindService()
    {
        await using var reference = BuildReference();
        await using var tables = BuildWithTables();

        var expected = GrpcEndpoints(reference);
        var actual = GrpcEndpoints(tables);

        expected.Should().NotBeEmpty();
        actual.Select(e => e.Describe).Should().Equal(expected.Select(e => e.Describe));
        for (var i = 0; i < expected.Count; i++)
        {
            if (expected[i].Method is { } method)
            {
                actual[i].Method.Should().BeSameAs(method, "the table registers the generated Method object of {0}", method.FullName);
            }
        }
    }

    [Test]
    public void Tables_MethodsAndHttpRules_SameAsDescriptors()
    {
        Check<VmServiceImpl>(Contracts.VmApi.VMService.Descriptor);
        Check<VistaraServiceImpl>(Contracts.Vistara.Vistara.Descriptor);
        Check<FlintlockMicroVmService>(Contracts.Flintlock.MicroVM.Descriptor);
        if (OperatingSystem.IsLinux())
        {
            Check<ImageServiceImpl>(Contracts.VmApi.ImageService.Descriptor);
        }

        Check<NodeServiceImpl>(Contracts.VmApi.NodeService.Descriptor);
        Check<SnapshotServiceImpl>(Contracts.VmApi.SnapshotService.Descriptor);
        Check<Grpc.Reflection.ReflectionServiceImpl>(Grpc.Reflection.V1Alpha.ServerReflection.Descriptor);
        Check<Grpc.Reflection.ReflectionV1ServiceImpl>(Grpc.Reflection.V1.ServerReflection.Descriptor);

        static void Check<TService>(ServiceDescriptor descriptor)
            where TService : class
        {
            var table = ApiMethodTables.For<TService>();
            table.Should().NotBeNull();
            var expected = descriptor.Methods.Select(m => (
                m.Service.FullName,
                m.Name,
                Type: m.IsClientStreaming ? (m.IsServerStreaming ? MethodType.DuplexStreaming : MethodType.ClientStreaming)
                    : m.IsServerStreaming ? MethodType.ServerStreaming : MethodType.Unary,
                Http: m.GetOptions()?.GetExtension(AnnotationsExtensions.Http)?.ToString() ?? "")).ToList();
            var actual = table!.Methods.Select(m => (m.Method.ServiceName, m.Method.Name, m.Method.Type, Http: m.Http?.ToString() ?? "")).ToList();
            actual.Should().Equal(expected, "{0}'s table follows its .proto", descriptor.FullName);
        }
    }

    [Test]
    public void Tables_HttpRoutes_ResolveTheirPathFields()
    {
        var resolved = 0;
        resolved += Resolve<VmServiceImpl>(Contracts.VmApi.VMService.Descriptor);
        resolved += Resolve<FlintlockMicroVmService>(Contracts.Flintlock.MicroVM.Descriptor);
        resolved += Resolve<NodeServiceImpl>(Contracts.VmApi.NodeService.Descriptor);
        resolved += Resolve<SnapshotServiceImpl>(Contracts.VmApi.SnapshotService.Descriptor);
        if (OperatingSystem.IsLinux())
        {
            resolved += Resolve<ImageServiceImpl>(Contracts.VmApi.ImageService.Descriptor);
        }

        resolved.Should().Be(OperatingSystem.IsLinux() ? 21 : 18, "every google.api.http rule in protos/ has a route");

        static int Resolve<TService>(ServiceDescriptor descriptor)
            where TService : class
        {
            var count = 0;
            foreach (var method in ApiMethodTables.For<TService>()!.Methods.Where(m => m.Http is not null))
            {
                var entry = new HttpJsonMethodEntry(descriptor.FullName + "." + method.Method.Name,
                    () => descriptor.FindMethodByName(method.Method.Name), method.CreateHttpJsonInvoker());
                var route = HttpJsonRoute.From(entry, method.Http!);
                route.Method.Name.Should().Be(method.Method.Name);
                route.Name.Should().Be(route.Method.FullName);
                route.PathFields.Select(f => f.Name).Should().Equal(route.Variables.Select(v => v.Name));
                route.PathFields.All(f => f.Path.Length > 0 && f.Path.All(p => p != null)).Should().BeTrue();
                count++;
            }

            return count;
        }
    }

    [Test]
    public async Task MapHttpJson_ReadsTheDescriptorOnlyWhenARouteIsFirstCalled()
    {
        await using var app = WebApplication.CreateSlimBuilder().Build();
        var reads = 0;

        app.MapHttpJson<NodeServiceImpl>(() =>
        {
            Interlocked.Increment(ref reads);
            return Contracts.VmApi.NodeService.Descriptor;
        });
        var endpoint = ((IEndpointRouteBuilder)app).DataSources.SelectMany(d => d.Endpoints).OfType<RouteEndpoint>()
            .Single(e => e.RoutePattern.RawText == "/v1/node");
        reads.Should().Be(0, "mapping the routes needs only the table's rules");

        var http = new DefaultHttpContext { RequestServices = app.Services };
        http.Request.Method = "PUT";
        await endpoint.RequestDelegate!(http);
        http.Response.StatusCode.Should().Be(StatusCodes.Status404NotFound, "an unmapped verb is answered without the descriptor");
        reads.Should().Be(0);
    }

    [Test]
    public async Task ReflectedServices_ReadsDescriptorsOnlyWhenReflectionIsFirstUsed()
    {
        await using var app = BuildWithTables();
        var reflected = app.Services.GetRequiredService<Reflection.ReflectedServices>();
        var reads = 0;
        reflected.Add(() =>
        {
            Interlocked.Increment(ref reads);
            return Contracts.VmApi.NodeService.Descriptor;
        });
        reads.Should().Be(0);

        var names = reflected.Descriptors.Select(d => d.FullName).ToList();

        reads.Should().Be(1);
        names.Should().OnlyHaveUniqueItems().And.Contain(["vm.services.api.VMService", "vm.services.api.NodeService", "grpc.health.v1.Health"]);
    }

    [Test]
    public void For_ServiceWithoutTable_ReturnsNull() =>
        ApiMethodTables.For<GrpcMethodTableTests>().Should().BeNull();

    private static WebApplication BuildWithTables()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddHypercoreApi();
        var app = builder.Build();
        app.MapHypercoreApi();
        return app;
    }

    /// <summary>The same services bound the way Grpc.AspNetCore binds them by default: through the generated BindService.</summary>
    private static WebApplication BuildReference()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddGrpc();
        builder.Services.AddGrpcHealthChecks();
        var app = builder.Build();
        app.MapGrpcService<VmServiceImpl>();
        app.MapGrpcService<VistaraServiceImpl>();
        app.MapGrpcService<FlintlockMicroVmService>();
        if (OperatingSystem.IsLinux())
        {
            app.MapGrpcService<ImageServiceImpl>();
        }

        app.MapGrpcService<NodeServiceImpl>();
        app.MapGrpcService<SnapshotServiceImpl>();
        app.MapGrpcHealthChecksService();
        app.MapGrpcService<Grpc.Reflection.ReflectionServiceImpl>();
        app.MapGrpcService<Grpc.Reflection.ReflectionV1ServiceImpl>();
        return app;
    }

    private static List<(string Describe, IMethod? Method)> GrpcEndpoints(WebApplication app) =>
        ((IEndpointRouteBuilder)app).DataSources.SelectMany(d => d.Endpoints).OfType<RouteEndpoint>()
            .Where(e => e.DisplayName?.StartsWith("gRPC", StringComparison.Ordinal) == true)
            .Select(e => (Describe(e), e.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method))
            .ToList();

    private static string Describe(RouteEndpoint endpoint)
    {
        var metadata = endpoint.Metadata
            .Where(m => !(m is Attribute && (m is BindServiceMethodAttribute || InertAttributeNamespaces.Contains(m.GetType().Namespace))))
            .Select(m => m switch
            {
                GrpcMethodMetadata g => $"grpc {g.ServiceType.FullName} {g.Method.FullName} {g.Method.Type}",
                HttpMethodMetadata h => $"http {string.Join(',', h.HttpMethods)} cors={h.AcceptCorsPreflight}",
                _ => m.GetType().FullName,
            });
        return $"{endpoint.DisplayName} | {endpoint.RoutePattern.RawText} | order {endpoint.Order} | {string.Join("; ", metadata)}";
    }
}

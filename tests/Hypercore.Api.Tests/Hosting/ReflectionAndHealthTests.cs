using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using Hypercore.Store;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Api.Tests.Hosting;

public sealed class ReflectionAndHealthTests
{
    private ApiTestServer _server = null!;

    [SetUp]
    public async Task SetUp() => _server = await ApiTestServer.StartAsync();

    [TearDown]
    public async Task TearDown() => await _server.DisposeAsync();

    [Test]
    public async Task Reflection_ListsBothServices()
    {
        var client = new ServerReflection.ServerReflectionClient(_server.Channel);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var call = client.ServerReflectionInfo(cancellationToken: cts.Token);

        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        (await call.ResponseStream.MoveNext(cts.Token)).Should().BeTrue();
        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { FileContainingSymbol = "vm.services.api.VMService" });
        (await call.ResponseStream.MoveNext(cts.Token)).Should().BeTrue();
        var descriptor = call.ResponseStream.Current.FileDescriptorResponse;
        await call.RequestStream.CompleteAsync();

        services.Should().Contain(["vm.services.api.VMService", "vistara.Vistara", "vm.services.api.NodeService", "grpc.health.v1.Health"]);
        descriptor.FileDescriptorProto.Should().NotBeEmpty("a reflection client can fetch the schema");
    }

    [Test]
    public async Task Reflection_V1AndV1Alpha_ListEveryMappedGrpcService()
    {
        // The reflected list is given statically (Api/Reflection): a service mapped without its descriptor would be
        // invisible to grpcurl. Compare with what is actually routed.
        var mapped = _server.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .Select(e => e.Metadata.GetMetadata<Grpc.AspNetCore.Server.GrpcMethodMetadata>())
            .Where(m => m is not null)
            .Select(m => m!.Method.ServiceName)
            .Distinct()
            .ToList();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        var alpha = new ServerReflection.ServerReflectionClient(_server.Channel);
        using var alphaCall = alpha.ServerReflectionInfo(cancellationToken: cts.Token);
        await alphaCall.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        (await alphaCall.ResponseStream.MoveNext(cts.Token)).Should().BeTrue();
        var alphaList = alphaCall.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        await alphaCall.RequestStream.CompleteAsync();

        var v1 = new Grpc.Reflection.V1.ServerReflection.ServerReflectionClient(_server.Channel);
        using var v1Call = v1.ServerReflectionInfo(cancellationToken: cts.Token);
        await v1Call.RequestStream.WriteAsync(new Grpc.Reflection.V1.ServerReflectionRequest { ListServices = "" });
        (await v1Call.ResponseStream.MoveNext(cts.Token)).Should().BeTrue();
        var v1List = v1Call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        await v1Call.RequestStream.CompleteAsync();

        mapped.Should().Contain(["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "vm.services.api.VMService"]);
        alphaList.Should().BeEquivalentTo(mapped);
        v1List.Should().BeEquivalentTo(mapped);
    }

    [Test]
    public async Task Health_StoreAnswers_ReportsServing()
    {
        var client = new Grpc.Health.V1.Health.HealthClient(_server.Channel);

        var reply = await client.CheckAsync(new HealthCheckRequest());

        reply.Status.Should().Be(HealthCheckResponse.Types.ServingStatus.Serving);
    }

    [Test]
    public async Task Health_StoreDown_ReportsNotServing()
    {
        var client = new Grpc.Health.V1.Health.HealthClient(_server.Channel);
        _server.Store.Outage = new StoreException("database file is gone");

        var reply = await client.CheckAsync(new HealthCheckRequest());

        reply.Status.Should().Be(HealthCheckResponse.Types.ServingStatus.NotServing);
        _server.Store.Outage = null;
    }
}

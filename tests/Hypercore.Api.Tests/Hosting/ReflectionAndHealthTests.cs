using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using Hypercore.Store;

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

using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Grpc.Reflection.V1Alpha;
using Hypercore.Api.Tests.Hosting;

namespace Hypercore.Api.Tests.Wire;

/// <summary>
/// What grpcurl and HTTP clients need besides the binary wire: the services and the metadata value types are
/// resolvable through reflection (grpcurl encodes an Any by looking its type up there), and JSON with Any
/// metadata and the seed's request shapes works by field name.
/// </summary>
public sealed class JsonAndReflectionWireTests
{
    private ApiTestServer _server = null!;

    [SetUp]
    public async Task SetUp() => _server = await WireServer.StartAsync();

    [TearDown]
    public async Task TearDown() => await _server.DisposeAsync();

    [Test]
    public async Task Reflection_ListsFlintlocksServiceAndResolvesTheMetadataValueTypes()
    {
        var client = new ServerReflection.ServerReflectionClient(_server.Channel);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var call = client.ServerReflectionInfo(cancellationToken: cts.Token);

        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        (await call.ResponseStream.MoveNext(cts.Token)).Should().BeTrue();
        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        var found = new Dictionary<string, bool>();
        foreach (var symbol in new[] { "google.protobuf.StringValue", "google.protobuf.BytesValue", "flintlock.types.MicroVMSpec", "microvm.services.api.v1alpha1.MicroVM" })
        {
            await call.RequestStream.WriteAsync(new ServerReflectionRequest { FileContainingSymbol = symbol });
            (await call.ResponseStream.MoveNext(cts.Token)).Should().BeTrue();
            found[symbol] = call.ResponseStream.Current.FileDescriptorResponse is { FileDescriptorProto.Count: > 0 };
        }

        await call.RequestStream.CompleteAsync();

        services.Should().Contain(["vm.services.api.VMService", "microvm.services.api.v1alpha1.MicroVM", "vistara.Vistara", "vm.services.api.ImageService"]);
        found.Should().OnlyContain(kv => kv.Value, "grpcurl resolves these through reflection");
    }

    [Test]
    public async Task HttpJson_AnyMetadataAndIdLookup_WorkByFieldName()
    {
        var body = """
            {"microvm":{"id":"json1","namespace":"j","vcpu":1,"memoryInMb":128,"kernel":{"image":"/k/vmlinuz"},"provider":"firecracker"},
             "metadata":{"user-data":{"@type":"type.googleapis.com/google.protobuf.StringValue","value":"#cloud-config\n"}}}
            """;
        using var post = await _server.Http.PostAsync("/v1/microvms", new StringContent(body, Encoding.UTF8, "application/json"));
        post.StatusCode.Should().Be(HttpStatusCode.OK, await post.Content.ReadAsStringAsync());

        var got = JsonNode.Parse(await _server.Http.GetStringAsync("/v1/microvms/json1?namespace=j"))!;
        ((string)got["microvm"]!["spec"]!["metadata"]!["user-data"]!).Should().Be("#cloud-config\n");
        ((string)got["microvm"]!["status"]!["state"]!).Should().Be("PENDING");
        ((string)got["microvm"]!["status"]!["phase"]!).Should().Be("Pending");

        // The seed's Get by uid and Hypercore's by id, as grpcurl would send them, through the same message.
        var uid = (string)got["microvm"]!["spec"]!["uid"]!;
        var byUid = Contracts.VmApi.GetMicroVMRequest.Parser.ParseJson($$"""{"uid":"{{uid}}"}""");
        var byId = Contracts.VmApi.GetMicroVMRequest.Parser.ParseJson("""{"id":"json1"}""");
        (await _server.Vms.GetAsync(byUid)).Microvm.Spec.Id.Should().Be("json1");
        (await _server.Vms.GetAsync(byId)).Microvm.Spec.Uid.Should().Be(uid);
    }
}

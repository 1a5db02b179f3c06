using System.Net;
using System.Text.Json;
using Google.Protobuf;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Contracts.VmApi;
using Hypercore.MicroVms;

namespace Hypercore.Api.Tests.MicroVms;

/// <summary>Images (issue 11): MicroVMStatus.images (fields 120-129) carry what the images start step wrote, on gRPC and HTTP/JSON.</summary>
public sealed class ImageStatusWireTests
{
    private ApiTestServer _server = null!;

    [SetUp]
    public async Task SetUp() => _server = await ApiTestServer.StartAsync();

    [TearDown]
    public async Task TearDown() => await _server.DisposeAsync();

    [Test]
    public async Task Get_ImagesInTheStoredStatus_AreShownPerReferenceOnGrpcAndHttp()
    {
        var request = JsonParser.Default.Parse<CreateMicroVMRequest>(VmServiceCreateTests.GrpcurlJson);
        request.Microvm.Kernel.Image = "localhost:5000/hypercore/default:1";
        request.Microvm.RootVolume = new Volume { Id = "root", Source = new VolumeSource { ContainerSource = "localhost:5000/rootfs:2" } };
        await _server.Vms.CreateAsync(request);
        var vm = (await _server.StoredAsync()).Single();
        const string digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        await _server.Store.Inner.UpdateStatusAsync(vm.Key, vm.Status with
        {
            Images =
            [
                new ImageStatus("localhost:5000/hypercore/default:1", "Ready", digest, 13631488, 13631488, "registry not reachable; using the last known digest"),
                new ImageStatus("localhost:5000/rootfs:2", "Pulling", null, 1048576, 67108864),
            ],
        }, vm.ResourceVersion);

        var reply = await _server.Vms.GetAsync(new GetMicroVMRequest { Id = "web1", Namespace = "demo" });

        var images = reply.Microvm.Status.Images;
        images.Should().HaveCount(2);
        images[0].Should().Be(new ImagePullStatus
        {
            Reference = "localhost:5000/hypercore/default:1", State = "Ready", Digest = digest, BytesDone = 13631488, BytesTotal = 13631488,
            Message = "registry not reachable; using the last known digest",
        });
        images[1].Should().Be(new ImagePullStatus { Reference = "localhost:5000/rootfs:2", State = "Pulling", BytesDone = 1048576, BytesTotal = 67108864 });

        using var http = await _server.Http.GetAsync("/v1/microvms/web1?namespace=demo");
        http.StatusCode.Should().Be(HttpStatusCode.OK);
        using var json = JsonDocument.Parse(await http.Content.ReadAsStringAsync());
        var shown = json.RootElement.GetProperty("microvm").GetProperty("status").GetProperty("images");
        shown.GetArrayLength().Should().Be(2);
        shown[0].GetProperty("digest").GetString().Should().Be(digest);
        shown[1].GetProperty("state").GetString().Should().Be("Pulling");
        shown[1].GetProperty("bytesTotal").ToString().Should().Be("67108864");
    }
}

using Google.Protobuf;
using Grpc.Core;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Contracts.VmApi;
using Hypercore.Images;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Api.Tests.MicroVms;

/// <summary>
/// Images (issue 11): an OCI reference makes the node (root) connect to the host it names, so Create refuses a
/// registry the node was not given (allowed-registries, insecure-registries) before anything is written.
/// </summary>
public sealed class AllowedRegistriesCreateTests
{
    private ApiTestServer _server = null!;

    [SetUp]
    public async Task SetUp() => _server = await ApiTestServer.StartAsync(
        services: s => s.AddSingleton(new RegistryAllowList(["ghcr.io", "localhost:5000"], ["registry.lan:5000"])));

    [TearDown]
    public async Task TearDown() => await _server.DisposeAsync();

    private static CreateMicroVMRequest Request(Action<MicroVMSpec> change)
    {
        var request = JsonParser.Default.Parse<CreateMicroVMRequest>(VmServiceCreateTests.GrpcurlJson);
        change(request.Microvm);
        return request;
    }

    [TestCase("kernel", "kernel.image \"10.0.0.7:6379/x/y:1\" names registry 10.0.0.7:6379")]
    [TestCase("initrd", "initrd.image \"10.0.0.7:6379/x/y:1\" names registry 10.0.0.7:6379")]
    [TestCase("root", "root_volume source.container_source \"10.0.0.7:6379/x/y:1\" names registry 10.0.0.7:6379")]
    [TestCase("volume", "volume \"data\" source.container_source \"10.0.0.7:6379/x/y:1\" names registry 10.0.0.7:6379")]
    public async Task Create_ReferenceToRegistryNotAllowed_ReturnsInvalidArgumentNamingTheSettingAndWritesNothing(string field, string expected)
    {
        const string reference = "10.0.0.7:6379/x/y:1"; // an internal service, not a registry the node was given
        var request = Request(vm =>
        {
            switch (field)
            {
                case "kernel": vm.Kernel.Image = reference; break;
                case "initrd": vm.Initrd = new Initrd { Image = reference }; break;
                case "root": vm.RootVolume = new Volume { Id = "root", Source = new VolumeSource { ContainerSource = reference } }; break;
                default: vm.AdditionalVolumes.Add(new Volume { Id = "data", Source = new VolumeSource { ContainerSource = reference } }); break;
            }
        });

        var act = async () => await _server.Vms.CreateAsync(request);

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain(expected)
            .And.Contain("allowed: ghcr.io,localhost:5000,registry.lan:5000")
            .And.Contain("vistarad setting allowed-registries (--allowed-registries ghcr.io,localhost:5000,registry.lan:5000,10.0.0.7:6379)");
        (await _server.StoredAsync()).Should().BeEmpty();
        _server.Drivers.Sum(d => d.Operations).Should().Be(0);
    }

    [Test]
    public async Task Create_SameHostWrittenDifferently_IsNotAllowed()
    {
        // Hosts compare as written: allowing localhost:5000 does not allow 127.0.0.1:5000 or another port.
        foreach (var reference in new[] { "127.0.0.1:5000/x:1", "localhost:5001/x:1", "localhost/x:1" })
        {
            var act = async () => await _server.Vms.CreateAsync(Request(vm => vm.Kernel.Image = reference));

            (await act.Should().ThrowAsync<RpcException>()).Which.StatusCode.Should().Be(StatusCode.InvalidArgument, reference);
        }

        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_ReferencesToAllowedAndInsecureRegistries_AreStored()
    {
        var request = Request(vm =>
        {
            vm.Kernel.Image = "GHCR.io/org/kernel:1";
            vm.Initrd = new Initrd { Image = "localhost:5000/hypercore/default:1" };
            vm.RootVolume = new Volume { Id = "root", Source = new VolumeSource { ContainerSource = "registry.lan:5000/rootfs:2" } };
        });

        var reply = await _server.Vms.CreateAsync(request);

        reply.Microvm.Spec.RootVolume.Source.ContainerSource.Should().Be("registry.lan:5000/rootfs:2");
        (await _server.StoredAsync()).Should().ContainSingle();
    }
}

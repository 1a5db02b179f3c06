using System.Runtime.Versioning;
using Grpc.Core;
using Hypercore.Api.Images;
using Hypercore.Api.Security;
using Hypercore.Api.Tests.Fakes;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Contracts.VmApi;
using Hypercore.Images.Cache;
using Hypercore.Images.Registry;
using Hypercore.MicroVms;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Api.Tests.Images;

/// <summary>
/// vm.services.api.ImageService names the VMs using an image (the cache records only uids): by namespace/id, through
/// the API's store, so a VM in a namespace the caller may not see stays a bare uid.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class ImageServiceTests
{
    private const string Digest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    private const string Reference = "localhost:5000/hypercore/default:1";
    private static readonly ServerCallContext Call = new TestCallContext();

    private ApiTestServer _server = null!;
    private DirectoryInfo _cacheRoot = null!;
    private RegistryClient _registry = null!;
    private ImageCache _cache = null!;

    [SetUp]
    public async Task SetUp()
    {
        _cacheRoot = Directory.CreateTempSubdirectory("hypercore-api-images-");
        // An image already in the cache's index (as a finished pull leaves it): the service reads only the index.
        File.WriteAllText(Path.Combine(_cacheRoot.FullName, "index.json"),
            $$"""{"Images":[{"Digest":"{{Digest}}","Config":null,"Layers":[],"References":["{{Reference}}"],"Users":[],"LastUsed":"2026-12-06T05:00:00+00:00"}]}""");
        _registry = new RegistryClient(new RegistryOptions());
        _cache = new ImageCache(new ImageCacheOptions { Root = _cacheRoot.FullName }, _registry, TimeProvider.System);
        _server = await ApiTestServer.StartAsync(services: s => s.AddSingleton(_cache));
    }

    [TearDown]
    public async Task TearDown()
    {
        await _server.DisposeAsync();
        _cache.Dispose();
        _registry.Dispose();
        _cacheRoot.Delete(recursive: true);
    }

    private async Task<MicroVm> VmAsync(string id, string ns)
    {
        await _server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec { Id = id, Namespace = ns, Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" } },
        });
        var vm = (await _server.Store.Inner.GetAsync(new VmKey(ns, id)))!;
        await _cache.AddUserAsync(Digest, vm.Uid, CancellationToken.None);
        return vm;
    }

    [Test]
    public async Task List_NamesEachUserByNamespaceAndId_AndAVmThatIsGoneByNothing()
    {
        var a = await VmAsync("web1", "team-a");
        var b = await VmAsync("web2", "team-b");
        await _cache.AddUserAsync(Digest, "0123456789abcdef0123456789abcdef", CancellationToken.None); // no such VM

        var listed = await new ImageService.ImageServiceClient(_server.Channel).ListAsync(new ListImagesRequest());

        var image = listed.Images.Should().ContainSingle().Subject;
        image.Users.Should().Equal(a.Uid, b.Uid, "0123456789abcdef0123456789abcdef");
        image.UserNames.Should().Equal("team-a/web1", "team-b/web2", "");
    }

    [Test]
    public async Task List_ACallerOfOneNamespace_SeesTheOtherNamespacesVmOnlyAsItsUid()
    {
        var a = await VmAsync("web1", "team-a");
        var b = await VmAsync("web2", "team-b");
        var policy = new AccessPolicy([new IdentityGrant("reader", ["team-a"], Write: false)]);
        var service = new ImageServiceImpl(new ServiceCollection()
            .AddSingleton(_cache)
            .AddSingleton(policy)
            .AddSingleton<Hypercore.Store.IMicroVmStore>(new AuthorizingMicroVmStore(_server.Store.Inner, policy))
            .BuildServiceProvider());

        using (CallerContext.Enter(new Caller("reader", "token")))
        {
            var image = (await service.List(new ListImagesRequest(), Call)).Images.Should().ContainSingle().Subject;

            image.Users.Should().Equal(a.Uid, b.Uid);
            image.UserNames.Should().Equal(new[] { "team-a/web1", "" }, "team-b's VM is not named to a caller of team-a");
        }
    }

    [Test]
    public async Task Remove_AnImageInUse_IsFailedPreconditionNamingEachVmWithItsUid_AndKeepsTheImage()
    {
        var a = await VmAsync("web1", "team-a");

        var act = () => new ImageService.ImageServiceClient(_server.Channel).RemoveAsync(new RemoveImageRequest { Image = Reference }).ResponseAsync;

        var error = (await act.Should().ThrowAsync<RpcException>()).Which;
        error.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        error.Status.Detail.Should().Be($"image {Digest} ({Reference}) is used by VM(s) team-a/web1 (uid {a.Uid}); delete them first");
        _cache.List().Should().ContainSingle().Which.Users.Should().Equal(a.Uid);
    }
}

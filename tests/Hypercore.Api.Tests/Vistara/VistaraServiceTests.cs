using Grpc.Core;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Contracts.Vistara;
using Hypercore.MicroVms;

namespace Hypercore.Api.Tests.Vistara;

public sealed class VistaraServiceTests
{
    private ApiTestServer _server = null!;

    [SetUp]
    public async Task SetUp() => _server = await ApiTestServer.StartAsync();

    [TearDown]
    public async Task TearDown()
    {
        try
        {
            _server.Drivers.Sum(d => d.Operations).Should().Be(0, "the API never calls a driver");
        }
        finally
        {
            await _server.DisposeAsync();
        }
    }

    private static async Task<RpcException> FailsAsync(Func<Task> act) =>
        (await act.Should().ThrowAsync<RpcException>()).Which;

    [Test]
    public async Task CreateMicroVM_ImageName_StoresTheResolvedSpecAndReturnsTheUid()
    {
        var dir = _server.AddImage("default", initrd: true);

        var reply = await _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest { Name = "web1", Image = "default", Memory = 256, Cpu = 2 });

        var stored = (await _server.StoredAsync()).Should().ContainSingle().Subject;
        reply.Id.Should().Be(stored.Uid);
        stored.Key.Should().Be(new VmKey("default", "web1"));
        stored.Spec.MemoryInMb.Should().Be(256);
        stored.Spec.Vcpu.Should().Be(2);
        stored.Spec.Provider.Should().Be("qemu");
        stored.Spec.Kernel.Image.Should().Be(Path.Combine(dir, "vmlinuz"));
        stored.Spec.Initrd!.Image.Should().Be(Path.Combine(dir, "initrd.img"));
        stored.Spec.Interfaces.Should().BeEmpty();
    }

    [Test]
    public async Task CreateMicroVM_ZeroesAndEmptyImage_UseDefaults()
    {
        _server.AddImage("default");

        await _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest());

        var stored = (await _server.StoredAsync()).Should().ContainSingle().Subject;
        stored.Spec.Id.Should().MatchRegex("^vm-[0-9a-f]{8}$");
        stored.Spec.MemoryInMb.Should().Be(128);
        stored.Spec.Vcpu.Should().Be(1);
        stored.Spec.Labels.Should().Contain(Hypercore.Images.ImageCatalog.ImageLabel, "default");
    }

    [Test]
    public async Task CreateMicroVM_Network_MakesThatManyTapInterfaces()
    {
        _server.AddImage("default");

        await _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest { Name = "net", Network = 2 });

        var stored = (await _server.StoredAsync()).Should().ContainSingle().Subject;
        stored.Spec.Interfaces.Select(i => (i.DeviceId, i.Type)).Should().Equal(("eth0", InterfaceType.Tap), ("eth1", InterfaceType.Tap));
    }

    [Test]
    public async Task CreateMicroVM_Disk_AddsAScratchDiskOfThatSize()
    {
        _server.AddImage("default");

        await _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest { Name = "d", Image = "default", Disk = 1024 });

        var spec = (await _server.StoredAsync()).Should().ContainSingle().Subject.Spec;
        spec.AdditionalVolumes.Should().ContainSingle().Which.Should().Be(new VolumeSpec { Id = "disk", HostPath = "", SizeInMb = 1024 });
        spec.RootVolume.Should().BeNull();
        var reply = await _server.Vms.GetAsync(new Contracts.VmApi.GetMicroVMRequest { Id = "d" });
        reply.Microvm.Spec.AdditionalVolumes[0].Source.HasHostPath.Should().BeFalse("a scratch disk has no host path until the driver makes it");
        reply.Microvm.Spec.AdditionalVolumes[0].SizeInMb.Should().Be(1024);
    }

    [Test]
    public async Task CreateMicroVM_NegativeDisk_ReturnsInvalidArgumentAndWritesNothing()
    {
        _server.AddImage("default");

        var ex = await FailsAsync(() => _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest { Name = "d", Disk = -5 }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("disk");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task CreateMicroVM_ImageWithRootfsAndDisk_KeepsRootfsAsRootAndReportsTotalDisk()
    {
        var dir = _server.AddImage("alpine", rootfsBytes: 64L * 1024 * 1024);

        var created = await _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest { Name = "d", Image = "alpine", Disk = 100 });

        var spec = (await _server.StoredAsync()).Should().ContainSingle().Subject.Spec;
        spec.RootVolume!.HostPath.Should().Be(Path.Combine(dir, "rootfs.img"));
        spec.RootVolume.SizeInMb.Should().Be(64);
        spec.AdditionalVolumes.Should().ContainSingle().Which.SizeInMb.Should().Be(100);
        (await _server.Vistara.GetMicroVMAsync(new GetMicroVMRequest { Id = created.Id })).Disk.Should().Be(164);
    }

    [Test]
    public async Task CreateMicroVM_UnknownImage_ReturnsInvalidArgumentListingImages()
    {
        _server.AddImage("default");

        var ex = await FailsAsync(() => _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest { Name = "x", Image = "ubuntu" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("\"ubuntu\"").And.Contain("images found: default");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [TestCase(-1, 0, 0, "memory")]
    [TestCase(0, 100, 0, "vcpu")]
    [TestCase(0, 0, 9, "network")]
    public async Task CreateMicroVM_OutOfRange_ReturnsInvalidArgument(int memory, int cpu, int network, string field)
    {
        _server.AddImage("default");

        var ex = await FailsAsync(() => _server.Vistara.CreateMicroVMAsync(
            new CreateMicroVMRequest { Name = "x", Memory = memory, Cpu = cpu, Network = network }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain(field);
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task CreateMicroVM_DuplicateName_ReturnsAlreadyExists()
    {
        _server.AddImage("default");
        await _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest { Name = "web1" });

        var ex = await FailsAsync(() => _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest { Name = "web1", Memory = 512 }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.AlreadyExists);
        (await _server.StoredAsync()).Should().ContainSingle().Which.Spec.MemoryInMb.Should().Be(128);
    }

    [Test]
    public async Task GetMicroVM_ByUidOrName_ReportsTheSpec()
    {
        _server.AddImage("alpine", rootfsBytes: 8L * 1024 * 1024);
        var created = await _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest { Name = "web1", Image = "alpine", Memory = 256, Cpu = 2, Network = 1 });

        var byUid = await _server.Vistara.GetMicroVMAsync(new GetMicroVMRequest { Id = created.Id });
        var byName = await _server.Vistara.GetMicroVMAsync(new GetMicroVMRequest { Id = "web1" });

        byUid.Should().Be(byName);
        byUid.Id.Should().Be(created.Id);
        byUid.Name.Should().Be("web1");
        byUid.Image.Should().Be("alpine");
        byUid.Memory.Should().Be(256);
        byUid.Cpu.Should().Be(2);
        byUid.Disk.Should().Be(8, "the image's rootfs.img is 8 MB");
        byUid.Network.Should().Be(1);
    }

    [Test]
    public async Task GetMicroVM_Missing_ReturnsNotFound()
    {
        var ex = await FailsAsync(() => _server.Vistara.GetMicroVMAsync(new GetMicroVMRequest { Id = "ghost" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.NotFound);
    }

    [Test]
    public async Task ListMicroVM_ReturnsParallelArrays()
    {
        _server.AddImage("default");
        var a = await _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest { Name = "a", Memory = 128, Cpu = 1 });
        var b = await _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest { Name = "b", Memory = 256, Cpu = 2 });

        var all = await _server.Vistara.ListMicroVMAsync(new ListMicroVMRequest());
        var one = await _server.Vistara.ListMicroVMAsync(new ListMicroVMRequest { Id = "b" });

        all.Id.Should().Equal(a.Id, b.Id);
        all.Name.Should().Equal("a", "b");
        all.Image.Should().Equal("default", "default");
        all.Memory.Should().Equal(128, 256);
        all.Cpu.Should().Equal(1, 2);
        all.Disk.Should().Equal(0, 0);
        all.Network.Should().Equal(0, 0);
        one.Id.Should().Equal(b.Id);
    }

    [Test]
    public async Task DeleteMicroVM_MarksForDeletionAndReturnsTheUid()
    {
        _server.AddImage("default");
        var created = await _server.Vistara.CreateMicroVMAsync(new CreateMicroVMRequest { Name = "web1" });

        var reply = await _server.Vistara.DeleteMicroVMAsync(new DeleteMicroVMRequest { Id = "web1" });

        reply.Id.Should().Be(created.Id);
        (await _server.StoredAsync()).Should().ContainSingle().Which.IsDeleting.Should().BeTrue();
    }

    [Test]
    public async Task DeleteMicroVM_EmptyId_ReturnsInvalidArgument()
    {
        var ex = await FailsAsync(() => _server.Vistara.DeleteMicroVMAsync(new DeleteMicroVMRequest()).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
    }
}

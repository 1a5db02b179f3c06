using System.Net;
using System.Text.Json;
using Grpc.Core;
using Hypercore.Api.Security;
using Hypercore.Api.Snapshots;
using Hypercore.Api.Tests.Fakes;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Contracts.VmApi;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Operations;
using Hypercore.Snapshots;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Api.Tests.Snapshots;

/// <summary>vm.services.api.SnapshotService over gRPC and HTTP/JSON, with a fake snapshotting "qemu" and a real snapshot store.</summary>
public sealed class SnapshotServiceTests
{
    private ApiTestServer _server = null!;
    private FakeSnapshotDriver _qemu = null!;

    private SnapshotService.SnapshotServiceClient Snapshots => new(_server.Channel);

    private DirectoryInfo _snapshotRoot = null!;

    [SetUp]
    public async Task SetUp()
    {
        _qemu = new FakeSnapshotDriver("qemu");
        _snapshotRoot = Directory.CreateTempSubdirectory("hypercore-snaps-api-");
        var unikernel = new FakeDriver("unikernel", DriverCapabilities.GracefulStop);
        _server = await ApiTestServer.StartAsync(services: s =>
        {
            s.AddSingleton(new DriverRegistry([_qemu, unikernel], "qemu"));
            s.AddSnapshots(Path.Combine(_snapshotRoot.FullName, "snapshots"));
        });
    }

    [TearDown]
    public async Task TearDown()
    {
        await _server.DisposeAsync();
        _snapshotRoot.Delete(recursive: true);
    }

    private SnapshotStore Store => _server.Services.GetRequiredService<SnapshotStore>();

    private async Task<MicroVm> RunningVmAsync(string id, string ns = "demo", string provider = "qemu", Phase phase = Phase.Running)
    {
        await _server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec
            {
                Id = id, Namespace = ns, Vcpu = 1, MemoryInMb = 128, Provider = provider,
                Kernel = new Kernel { Image = "/boot/vmlinuz" },
            },
        });
        var stored = (await _server.Store.Inner.GetAsync(new VmKey(ns, id)))!;
        return await _server.Store.Inner.UpdateStatusAsync(stored.Key, stored.Status with { Phase = phase }, stored.ResourceVersion);
    }

    private static readonly ServerCallContext Call = new TestCallContext();

    private static async Task<RpcException> FailsAsync(Func<Task> act) => (await act.Should().ThrowAsync<RpcException>()).Which;

    [Test]
    public async Task Snapshot_RunningVm_WritesFilesAndManifestAndListsIt()
    {
        var vm = await RunningVmAsync("web1");

        var info = await Snapshots.SnapshotAsync(new SnapshotRequest { Id = "web1", Namespace = "demo", Name = "before-upgrade" });

        info.Name.Should().Be("before-upgrade");
        info.Namespace.Should().Be("demo");
        info.SourceId.Should().Be("web1");
        info.SourceUid.Should().Be(vm.Uid);
        info.Provider.Should().Be("qemu");
        info.SizeBytes.Should().BeGreaterThan(0);
        info.Files.Should().ContainSingle(f => f.Name == "memory.state" && f.Sha256.Length == 64);
        info.SourceSpec.Kernel.Image.Should().Be("/boot/vmlinuz");
        File.Exists(Path.Combine(info.Path, "manifest.json")).Should().BeTrue();
        File.ReadAllText(Path.Combine(info.Path, "memory.state")).Should().Be($"state of {vm.Uid}");
        var listed = await Snapshots.ListSnapshotsAsync(new ListSnapshotsRequest());
        listed.Snapshots.Should().ContainSingle().Which.Name.Should().Be("before-upgrade");
    }

    [Test]
    public async Task Snapshot_DuplicateName_ReturnsAlreadyExists()
    {
        await RunningVmAsync("web1");
        await Snapshots.SnapshotAsync(new SnapshotRequest { Id = "web1", Name = "s1" });

        var ex = await FailsAsync(() => Snapshots.SnapshotAsync(new SnapshotRequest { Id = "web1", Name = "s1" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.AlreadyExists);
        ex.Status.Detail.Should().Contain("\"s1\"");
        _qemu.Saved.Should().HaveCount(1, "the second request never reached the driver");
    }

    [TestCase("")]
    [TestCase("Upper")]
    [TestCase("../etc")]
    [TestCase("-dash")]
    public async Task Snapshot_BadName_ReturnsInvalidArgumentAndWritesNothing(string name)
    {
        await RunningVmAsync("web1");

        var ex = await FailsAsync(() => Snapshots.SnapshotAsync(new SnapshotRequest { Id = "web1", Name = name }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("snapshot name");
        _qemu.Saved.Should().BeEmpty();
        (Directory.Exists(Store.Root) ? Directory.EnumerateFileSystemEntries(Store.Root) : []).Should().BeEmpty();
    }

    [Test]
    public async Task Snapshot_UnknownVm_ReturnsNotFound()
    {
        var ex = await FailsAsync(() => Snapshots.SnapshotAsync(new SnapshotRequest { Id = "ghost", Name = "s1" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.NotFound);
    }

    [TestCase(Phase.Stopped)]
    [TestCase(Phase.Pending)]
    [TestCase(Phase.Failed)]
    public async Task Snapshot_VmNotRunning_ReturnsFailedPrecondition(Phase phase)
    {
        await RunningVmAsync("web1", phase: phase);

        var ex = await FailsAsync(() => Snapshots.SnapshotAsync(new SnapshotRequest { Id = "web1", Name = "s1" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        ex.Status.Detail.Should().Contain(phase.ToString()).And.Contain("start it first");
        Store.Exists("s1").Should().BeFalse();
    }

    [Test]
    public async Task Snapshot_ProviderWithoutSnapshots_ReturnsFailedPrecondition()
    {
        await RunningVmAsync("uk", provider: "unikernel");

        var ex = await FailsAsync(() => Snapshots.SnapshotAsync(new SnapshotRequest { Id = "uk", Name = "s1" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        ex.Status.Detail.Should().Contain("provider \"unikernel\" of microvm demo/uk cannot take snapshots");
    }

    [Test]
    public async Task Snapshot_DriverFails_ReturnsInternalAndLeavesNoFiles()
    {
        await RunningVmAsync("web1");
        _qemu.FailWith = "HypervisorError";

        var ex = await FailsAsync(() => Snapshots.SnapshotAsync(new SnapshotRequest { Id = "web1", Name = "s1" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.Internal);
        ex.Status.Detail.Should().Contain("fake HypervisorError");
        Directory.EnumerateFileSystemEntries(Store.Root).Should().BeEmpty("the staging directory is removed");
    }

    [Test]
    public async Task Snapshot_VmGoneMeanwhile_ReturnsFailedPrecondition()
    {
        await RunningVmAsync("web1");
        _qemu.FailWith = "NotRunning";

        var ex = await FailsAsync(() => Snapshots.SnapshotAsync(new SnapshotRequest { Id = "web1", Name = "s1" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
    }

    [Test]
    public async Task DeleteSnapshot_RemovesItsFiles_UnknownIsNotFound()
    {
        await RunningVmAsync("web1");
        var info = await Snapshots.SnapshotAsync(new SnapshotRequest { Id = "web1", Name = "s1" });

        await Snapshots.DeleteSnapshotAsync(new DeleteSnapshotRequest { Name = "s1" });

        Directory.Exists(info.Path).Should().BeFalse();
        (await Snapshots.ListSnapshotsAsync(new ListSnapshotsRequest())).Snapshots.Should().BeEmpty();
        var ex = await FailsAsync(() => Snapshots.DeleteSnapshotAsync(new DeleteSnapshotRequest { Name = "s1" }).ResponseAsync);
        ex.StatusCode.Should().Be(StatusCode.NotFound);
        var bad = await FailsAsync(() => Snapshots.DeleteSnapshotAsync(new DeleteSnapshotRequest { Name = "../x" }).ResponseAsync);
        bad.StatusCode.Should().Be(StatusCode.InvalidArgument);
    }

    [Test]
    public async Task DeleteVm_SnapshotRemainsUntilDeleted()
    {
        var vm = await RunningVmAsync("web1");
        await Snapshots.SnapshotAsync(new SnapshotRequest { Id = "web1", Name = "keep" });

        await _server.Vms.DeleteAsync(new DeleteMicroVMRequest { Uid = vm.Uid });
        await _server.Store.Inner.RemoveAsync(vm.Key); // what the reconciler does once the VM is cleaned up

        (await _server.Store.Inner.GetAsync(vm.Key)).Should().BeNull();
        (await Snapshots.ListSnapshotsAsync(new ListSnapshotsRequest { Name = "keep" })).Snapshots.Should().ContainSingle();
    }

    [Test]
    public async Task Create_RestoreFromBadName_ReturnsInvalidArgument_GoodNameIsStored()
    {
        var spec = new MicroVMSpec { Id = "r1", Namespace = "demo", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" } };

        var bad = spec.Clone();
        bad.RestoreFrom = "Not_A_Name";
        var ex = await FailsAsync(() => _server.Vms.CreateAsync(new CreateMicroVMRequest { Microvm = bad }).ResponseAsync);
        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("restore_from");

        spec.RestoreFrom = "s1";
        var created = await _server.Vms.CreateAsync(new CreateMicroVMRequest { Microvm = spec });
        created.Microvm.Spec.RestoreFrom.Should().Be("s1");
        (await _server.Store.Inner.GetAsync(new VmKey("demo", "r1")))!.Spec.RestoreFrom.Should().Be("s1");
    }

    [Test]
    public async Task HttpRoutes_SnapshotListDelete()
    {
        await RunningVmAsync("web1");

        var post = await _server.Http.PostAsync("/v1/microvms/web1:snapshot", new StringContent("""{"namespace":"demo","name":"h1"}""", System.Text.Encoding.UTF8, "application/json"));
        post.StatusCode.Should().Be(HttpStatusCode.OK, await post.Content.ReadAsStringAsync());
        var list = JsonDocument.Parse(await _server.Http.GetStringAsync("/v1/snapshots"));
        list.RootElement.GetProperty("snapshots")[0].GetProperty("name").GetString().Should().Be("h1");
        var again = await _server.Http.PostAsync("/v1/microvms/web1:snapshot", new StringContent("""{"name":"h1"}""", System.Text.Encoding.UTF8, "application/json"));
        again.StatusCode.Should().Be(HttpStatusCode.Conflict);
        (await _server.Http.DeleteAsync("/v1/snapshots/h1")).StatusCode.Should().Be(HttpStatusCode.OK);
        (await _server.Http.DeleteAsync("/v1/snapshots/h1")).StatusCode.Should().Be(HttpStatusCode.NotFound);
    }

    [Test]
    public async Task Authorization_ReadOnlyOrOtherNamespace_CannotSnapshotOrSeeOrDelete()
    {
        var vm = await RunningVmAsync("web1", ns: "team-a");
        var policy = new AccessPolicy([
            new IdentityGrant("writer", ["team-a"], Write: true),
            new IdentityGrant("reader", ["team-a"], Write: false),
            new IdentityGrant("other", ["team-b"], Write: true),
        ]);
        var service = new SnapshotServiceImpl(_server.Services.GetRequiredService<MicroVmOperations>(), _server.Services.GetRequiredService<SnapshotManager>(), policy);
        var manifest = await _server.Services.GetRequiredService<SnapshotManager>().CreateAsync(vm, "a1", CancellationToken.None);

        using (CallerContext.Enter(new Caller("reader", "token")))
        {
            var act = () => service.Snapshot(new SnapshotRequest { Id = "web1", Namespace = "team-a", Name = "r1" }, Call);
            (await act.Should().ThrowAsync<RpcException>()).Which.StatusCode.Should().Be(StatusCode.PermissionDenied);
            var delete = () => service.DeleteSnapshot(new DeleteSnapshotRequest { Name = "a1" }, Call);
            (await delete.Should().ThrowAsync<RpcException>()).Which.StatusCode.Should().Be(StatusCode.PermissionDenied);
            (await service.ListSnapshots(new ListSnapshotsRequest(), Call)).Snapshots.Should().ContainSingle();
        }

        using (CallerContext.Enter(new Caller("other", "token")))
        {
            (await service.ListSnapshots(new ListSnapshotsRequest(), Call)).Snapshots.Should().BeEmpty("snapshots of other namespaces are not listed");
            var delete = () => service.DeleteSnapshot(new DeleteSnapshotRequest { Name = "a1" }, Call);
            (await delete.Should().ThrowAsync<SnapshotNotFoundException>()).Which.Message.Should().Contain("not found");
        }

        Store.Exists(manifest.Name).Should().BeTrue();
        Store.Exists("r1").Should().BeFalse();
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Api.Tests.Wire.Flintlock;
using Hypercore.Api.Tests.Wire.Flintlock.Types;
using Hypercore.Client;
using Hypercore.MicroVms;
using Seed = Hypercore.Api.Tests.Wire.Seed;

namespace Hypercore.Api.Tests.Wire;

/// <summary>
/// A client generated from flintlock v0.11.0's protos (the test's own copy) against microvm.services.api.v1alpha1.MicroVM,
/// shaped like cluster-api-provider-microvm's requests.
/// </summary>
public sealed class FlintlockClientWireTests
{
    private const string Kernel = "/var/lib/hypercore/images/default/vmlinuz";

    private ApiTestServer _server = null!;
    private Flintlock.MicroVM.MicroVMClient _flintlock = null!;

    [SetUp]
    public async Task SetUp()
    {
        _server = await WireServer.StartAsync();
        _flintlock = _server.FlintlockClient();
    }

    [TearDown]
    public async Task TearDown() => await _server.DisposeAsync();

    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    /// <summary>What CAPMVM sends: add_network_config, guest_mac on every interface, no type (macvtap), base64 metadata.</summary>
    private static CreateMicroVMRequest CapmvmShaped(string id, string kernelImage)
    {
        var spec = new MicroVMSpec
        {
            Id = id,
            Namespace = "capmvm",
            Vcpu = 2,
            MemoryInMb = 512,
            Provider = WireServer.MetadataProvider,
            Kernel = new Flintlock.Types.Kernel { Image = kernelImage, Filename = "boot/vmlinux", AddNetworkConfig = true },
        };
        spec.Labels["cluster.x-k8s.io/cluster-name"] = "mvm-test";
        spec.Kernel.Cmdline["console"] = "ttyS0";
        spec.Interfaces.Add(new NetworkInterface { DeviceId = "eth0", GuestMac = "02:00:00:00:00:0a" });
        spec.Interfaces.Add(new NetworkInterface
        {
            DeviceId = "eth1",
            Type = NetworkInterface.Types.IfaceType.Tap,
            GuestMac = "02:00:00:00:00:0b",
            Address = new StaticAddress { Address = "10.77.0.2/24", Gateway = "10.77.0.1" },
            Overrides = new NetworkOverrides { BridgeName = "br-wire" },
        });
        spec.Metadata["meta-data"] = B64($"instance_id: {id}\nlocal_hostname: {id}\n");
        spec.Metadata["user-data"] = B64("#cloud-config\nruncmd: [echo hello]\n");
        spec.Metadata["vendor-data"] = B64("#cloud-config\n");
        return new CreateMicroVMRequest { Microvm = spec };
    }

    [Test]
    public async Task Create_CapmvmShapedWithOciImages_IsStoredWithTheReferencesForTheImagesStep()
    {
        // Images (issue 11): the references are pulled by the reconciler's images step; Create stores them as sent.
        var request = CapmvmShaped("oci1", "ghcr.io/liquidmetal-dev/firecracker-kernel:5.10.77");
        request.Microvm.RootVolume = new Volume
        {
            Id = "root",
            Source = new VolumeSource { ContainerSource = "ghcr.io/liquidmetal-dev/capmvm-k8s-os:1.23.5" },
        };

        var created = (await _flintlock.CreateMicroVMAsync(request)).Microvm;

        var got = (await _flintlock.GetMicroVMAsync(new GetMicroVMRequest { Uid = created.Spec.Uid })).Microvm;
        got.Spec.Kernel.Image.Should().Be("ghcr.io/liquidmetal-dev/firecracker-kernel:5.10.77");
        got.Spec.RootVolume.Source.ContainerSource.Should().Be("ghcr.io/liquidmetal-dev/capmvm-k8s-os:1.23.5");
        var stored = (await _server.Store.Inner.GetByUidAsync(created.Spec.Uid))!;
        stored.Spec.RootVolume!.ContainerSource.Should().Be("ghcr.io/liquidmetal-dev/capmvm-k8s-os:1.23.5");
    }

    [Test]
    public async Task Create_MalformedOciReference_ReturnsInvalidArgumentNamingTheFieldAndWritesNothing()
    {
        var request = CapmvmShaped("oci2", "ghcr.io/Liquidmetal/Kernel:5.10");
        request.Microvm.RootVolume = new Volume { Id = "root", Source = new VolumeSource { ContainerSource = "capmvm-k8s-os:1.23.5" } };

        var ex = (await _flintlock.Invoking(c => c.CreateMicroVMAsync(request).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should()
            .Contain("kernel.image: image reference 'ghcr.io/Liquidmetal/Kernel:5.10': repository 'Liquidmetal/Kernel' must be lowercase")
            .And.Contain("volume \"root\" source.container_source \"capmvm-k8s-os:1.23.5\" is not an OCI image reference; write it with its registry host");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_CapmvmShaped_GuestMacAddressAndBridgeRoundTripAndMetadataIsDecoded()
    {
        var created = (await _flintlock.CreateMicroVMAsync(CapmvmShaped("cap1", Kernel))).Microvm;
        created.Spec.Uid.Should().NotBeEmpty("CAPMVM reads spec.uid from the Create reply");

        var got = (await _flintlock.GetMicroVMAsync(new GetMicroVMRequest { Uid = created.Spec.Uid })).Microvm;
        got.Spec.Kernel.AddNetworkConfig.Should().BeTrue();
        got.Spec.Kernel.Filename.Should().Be("boot/vmlinux");
        got.Spec.Interfaces.Should().HaveCount(2);
        got.Spec.Interfaces[0].Type.Should().Be(NetworkInterface.Types.IfaceType.Macvtap);
        got.Spec.Interfaces[0].GuestMac.Should().Be("02:00:00:00:00:0a");
        got.Spec.Interfaces[0].Address.Should().BeNull();
        var eth1 = got.Spec.Interfaces[1];
        eth1.Type.Should().Be(NetworkInterface.Types.IfaceType.Tap);
        eth1.GuestMac.Should().Be("02:00:00:00:00:0b");
        eth1.Address.Address.Should().Be("10.77.0.2/24");
        eth1.Address.Gateway.Should().Be("10.77.0.1");
        eth1.Overrides.BridgeName.Should().Be("br-wire");
        got.Status.State.Should().Be(MicroVMStatus.Types.MicroVMState.Pending);
        got.Status.NetworkInterfaces["eth1"].MacAddress.Should().Be("02:00:00:00:00:0b");
        got.Status.NetworkInterfaces["eth1"].Index.Should().Be(1);
        got.Status.KernelMount.Source.Should().Be(Kernel);
        got.Spec.Metadata.Should().BeEquivalentTo(CapmvmShaped("cap1", Kernel).Microvm.Metadata, "a flintlock client reads back the base64 it sent");

        var stored = (await _server.Store.Inner.GetByUidAsync(created.Spec.Uid))!;
        stored.Spec.Interfaces[0].Type.Should().Be(InterfaceType.Macvtap, "an interface without a type is macvtap, flintlock's default");
        stored.Spec.Interfaces[1].Bridge.Should().Be("br-wire");
        stored.Spec.Metadata["meta-data"].Should().Be("instance_id: cap1\nlocal_hostname: cap1\n", "flintlock's base64 is decoded for the guest");
        stored.Spec.Metadata["user-data"].Should().Be("#cloud-config\nruncmd: [echo hello]\n");
        stored.Spec.Metadata["vendor-data"].Should().Be("#cloud-config\n");
    }

    [Test]
    public async Task Create_RequestAnyMetadata_StringValueIsBase64TextAndBytesValueIsRaw()
    {
        var request = CapmvmShaped("cap2", Kernel);
        request.Microvm.Metadata.Clear();
        request.Metadata["user-data"] = Any.Pack(new StringValue { Value = B64("#cloud-config\n") });
        request.Metadata["meta-data"] = Any.Pack(new BytesValue { Value = ByteString.CopyFromUtf8("instance_id: cap2\n") });

        var created = (await _flintlock.CreateMicroVMAsync(request)).Microvm;

        var stored = (await _server.Store.Inner.GetByUidAsync(created.Spec.Uid))!;
        stored.Spec.Metadata.Should().BeEquivalentTo(new Dictionary<string, string> { ["user-data"] = "#cloud-config\n", ["meta-data"] = "instance_id: cap2\n" });
    }

    [TestCase("spec")]
    [TestCase("any")]
    public async Task Create_MetadataNotBase64_ReturnsInvalidArgumentNamingTheKeyAndWritesNothing(string where)
    {
        var request = CapmvmShaped("cap3", Kernel);
        if (where == "spec")
        {
            request.Microvm.Metadata["user-data"] = "#cloud-config (plain text, not base64)";
        }
        else
        {
            request.Metadata["extra"] = Any.Pack(new StringValue { Value = "not base64!" });
        }

        var ex = (await _flintlock.Invoking(c => c.CreateMicroVMAsync(request).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain(where == "spec" ? "microvm.metadata[\"user-data\"] is not base64 text" : "metadata[\"extra\"] is not base64 text");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    // Guest bootstrap: what may be served to the guest.
    [TestCase("hostname")]
    [TestCase("x-Role")]
    public async Task Create_MetadataKeyNotCloudInitsOrX_ReturnsInvalidArgumentNamingTheKeyAndWritesNothing(string key)
    {
        var request = CapmvmShaped("cap6", Kernel);
        request.Microvm.Metadata[key] = B64("web-1");

        var ex = (await _flintlock.Invoking(c => c.CreateMicroVMAsync(request).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain($"metadata key \"{key}\" is not one of meta-data, user-data, vendor-data, network-config");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_MetadataOver64KiBDecoded_ReturnsInvalidArgumentAndWritesNothing()
    {
        var request = CapmvmShaped("cap7", Kernel);
        request.Microvm.Metadata["user-data"] = B64("#!/bin/sh\n" + new string('#', 64 * 1024));

        var ex = (await _flintlock.Invoking(c => c.CreateMicroVMAsync(request).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("at most 65536 bytes (64 KiB)").And.Contain("\"user-data\"");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_MetaDataNotAYamlMapping_ReturnsInvalidArgumentNamingTheKey()
    {
        var request = CapmvmShaped("cap8", Kernel);
        request.Microvm.Metadata["meta-data"] = B64("just a sentence");

        var ex = (await _flintlock.Invoking(c => c.CreateMicroVMAsync(request).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("metadata[\"meta-data\"] is not a YAML mapping");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_AnyMetadataOfAnotherType_ReturnsInvalidArgumentNamingTheKey()
    {
        var request = CapmvmShaped("cap4", Kernel);
        request.Metadata["when"] = Any.Pack(Timestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch));

        var ex = (await _flintlock.Invoking(c => c.CreateMicroVMAsync(request).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("metadata[\"when\"] is a google.protobuf.Timestamp");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_MetadataOnDefaultProviderWithoutMetadataService_ReturnsFailedPrecondition()
    {
        var request = CapmvmShaped("cap5", Kernel);
        request.Microvm.ClearProvider();

        var ex = (await _flintlock.Invoking(c => c.CreateMicroVMAsync(request).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        ex.Status.Detail.Should().Contain("provider \"qemu\" has no metadata service").And.Contain("meta-data, user-data, vendor-data");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_GuestAgent_ReturnsInvalidArgumentNamingTheField()
    {
        var request = CapmvmShaped("cap6", Kernel);
        request.Microvm.AllowGuestAgent = true;

        var ex = (await _flintlock.Invoking(c => c.CreateMicroVMAsync(request).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("allow_guest_agent");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_PartitionIdOnAdditionalVolume_ReturnsInvalidArgumentSayingItIsForTheRootVolume()
    {
        var request = CapmvmShaped("cap6b", Kernel);
        request.Microvm.AdditionalVolumes.Add(new Volume { Id = "data", PartitionId = "6c2a6b1e-01", SizeInMb = 64 });

        var ex = (await _flintlock.Invoking(c => c.CreateMicroVMAsync(request).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("volume \"data\" partition_id is only allowed on the root volume");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_RootPartitionIdAndNameserversInFields5And3_RoundTripAndAreStored()
    {
        var request = CapmvmShaped("cap6c", Kernel);
        request.Microvm.RootVolume = new Volume { Id = "root", PartitionId = "6c2a6b1e-01", SizeInMb = 64 };
        request.Microvm.Interfaces[1].Address.Nameservers.Add(["10.77.0.53", "10.77.0.54"]);

        var created = (await _flintlock.CreateMicroVMAsync(request)).Microvm;
        var got = (await _flintlock.GetMicroVMAsync(new GetMicroVMRequest { Uid = created.Spec.Uid })).Microvm;

        got.Spec.RootVolume.PartitionId.Should().Be("6c2a6b1e-01");
        got.Spec.Interfaces[1].Address.Nameservers.Should().Equal("10.77.0.53", "10.77.0.54");
        got.Spec.Interfaces[0].Address.Should().BeNull();
        var stored = (await _server.Store.Inner.GetByUidAsync(created.Spec.Uid))!;
        stored.Spec.RootVolume!.PartitionId.Should().Be("6c2a6b1e-01");
        stored.Spec.Interfaces[1].Nameservers.Should().Equal("10.77.0.53", "10.77.0.54");
    }

    [Test]
    public async Task Create_ThreeNameservers_ReturnsInvalidArgumentSayingAtMostTwoAndWritesNothing()
    {
        var request = CapmvmShaped("cap6d", Kernel);
        request.Microvm.Interfaces[1].Address.Nameservers.Add(["10.77.0.53", "10.77.0.54", "10.77.0.55"]);

        var ex = (await _flintlock.Invoking(c => c.CreateMicroVMAsync(request).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("has 3 nameservers; at most 2").And.Contain("dns0 and dns1");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_ScratchVolumeSizeInField6_IsStored()
    {
        var request = CapmvmShaped("cap7", Kernel);
        request.Microvm.AdditionalVolumes.Add(new Volume { Id = "scratch", SizeInMb = 64, MountPoint = "/data" });

        var created = (await _flintlock.CreateMicroVMAsync(request)).Microvm;

        var stored = (await _server.Store.Inner.GetByUidAsync(created.Spec.Uid))!;
        stored.Spec.AdditionalVolumes.Should().ContainSingle().Which.Should().BeEquivalentTo(new { Id = "scratch", SizeInMb = 64, MountPoint = "/data" });
        created.Spec.AdditionalVolumes[0].SizeInMb.Should().Be(64);
    }

    [Test]
    public async Task Get_VolumesAndMounts_AreReportedAsFlintlocksMountsFromTheHostPaths()
    {
        var spec = new Contracts.VmApi.MicroVMSpec
        {
            Id = "mounts1", Namespace = "m", Vcpu = 1, MemoryInMb = 128,
            Kernel = new Contracts.VmApi.Kernel { Image = Kernel },
            Initrd = new Contracts.VmApi.Initrd { Image = "/var/lib/hypercore/images/default/initrd.img" },
            RootVolume = new Contracts.VmApi.Volume { Id = "root", Source = new Contracts.VmApi.VolumeSource { HostPath = "/srv/root.img" } },
        };
        spec.AdditionalVolumes.Add(new Contracts.VmApi.Volume { Id = "disk", Source = new Contracts.VmApi.VolumeSource { HostPath = "/dev/vdb" } });
        spec.AdditionalVolumes.Add(new Contracts.VmApi.Volume { Id = "scratch", SizeInMb = 32 });
        var uid = (await _server.Vms.CreateAsync(new Contracts.VmApi.CreateMicroVMRequest { Microvm = spec })).Microvm.Spec.Uid;

        var status = (await _flintlock.GetMicroVMAsync(new GetMicroVMRequest { Uid = uid })).Microvm.Status;

        status.KernelMount.Should().BeEquivalentTo(new Mount { Type = Mount.Types.MountType.Hostpath, Source = Kernel });
        status.InitrdMount.Source.Should().Be("/var/lib/hypercore/images/default/initrd.img");
        status.Volumes.Keys.Should().BeEquivalentTo(["root", "disk"], "a scratch disk's file is the driver's and not known to the API");
        status.Volumes["root"].Mount.Should().BeEquivalentTo(new Mount { Type = Mount.Types.MountType.Hostpath, Source = "/srv/root.img" });
        status.Volumes["disk"].Mount.Should().BeEquivalentTo(new Mount { Type = Mount.Types.MountType.Dev, Source = "/dev/vdb" });
    }

    [TestCase(Phase.Pending, MicroVMStatus.Types.MicroVMState.Pending)]
    [TestCase(Phase.Provisioning, MicroVMStatus.Types.MicroVMState.Pending)]
    [TestCase(Phase.Running, MicroVMStatus.Types.MicroVMState.Created)]
    [TestCase(Phase.Paused, MicroVMStatus.Types.MicroVMState.Created)]
    [TestCase(Phase.Stopping, MicroVMStatus.Types.MicroVMState.Pending)]
    [TestCase(Phase.Stopped, MicroVMStatus.Types.MicroVMState.Created)]
    [TestCase(Phase.Failed, MicroVMStatus.Types.MicroVMState.Failed)]
    [TestCase(Phase.CrashLoopBackOff, MicroVMStatus.Types.MicroVMState.Failed)]
    [TestCase(Phase.Deleting, MicroVMStatus.Types.MicroVMState.Deleting)]
    public async Task Get_StatusState_FollowsThePhase(Phase phase, MicroVMStatus.Types.MicroVMState expected)
    {
        var created = (await _flintlock.CreateMicroVMAsync(CapmvmShaped("phase1", Kernel))).Microvm;
        await _server.SetPhaseAsync(created.Spec.Uid, phase);

        var got = (await _flintlock.GetMicroVMAsync(new GetMicroVMRequest { Uid = created.Spec.Uid })).Microvm;

        got.Status.State.Should().Be(expected);
    }

    [Test]
    public async Task Delete_ThenGet_StateIsDeletingAndUnknownUidSaysNotFound()
    {
        var created = (await _flintlock.CreateMicroVMAsync(CapmvmShaped("del1", Kernel))).Microvm;
        await _server.SetPhaseAsync(created.Spec.Uid, Phase.Running);

        await _flintlock.DeleteMicroVMAsync(new DeleteMicroVMRequest { Uid = created.Spec.Uid });

        (await _flintlock.GetMicroVMAsync(new GetMicroVMRequest { Uid = created.Spec.Uid })).Microvm.Status.State
            .Should().Be(MicroVMStatus.Types.MicroVMState.Deleting);
        foreach (var call in new Func<Task>[]
        {
            () => _flintlock.GetMicroVMAsync(new GetMicroVMRequest { Uid = "gone-uid" }).ResponseAsync,
            () => _flintlock.DeleteMicroVMAsync(new DeleteMicroVMRequest { Uid = "gone-uid" }).ResponseAsync,
        })
        {
            var ex = (await call.Should().ThrowAsync<RpcException>()).Which;
            ex.StatusCode.Should().Be(StatusCode.NotFound);
            ex.Status.Detail.Should().Contain("not found", "CAPMVM recognises a deleted VM only by this text");
        }
    }

    [Test]
    public async Task Get_EmptyUid_ReturnsInvalidArgument()
    {
        var ex = (await _flintlock.Invoking(c => c.GetMicroVMAsync(new GetMicroVMRequest()).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("uid is required");
    }

    [Test]
    public async Task SeedFlintlockAndVisClients_SeeTheSameVms()
    {
        var seed = _server.SeedClient();
        var bySeed = (await seed.CreateAsync(new Seed.CreateMicroVMRequest
        {
            Microvm = new Seed.MicroVMSpec { Id = "from-seed", Namespace = "shared", Vcpu = 1, MemoryInMb = 128, Kernel = new Seed.Kernel { Image = Kernel } },
        })).Microvm;
        var request = CapmvmShaped("from-flintlock", Kernel);
        request.Microvm.Namespace = "shared";
        var byFlintlock = (await _flintlock.CreateMicroVMAsync(request)).Microvm;
        using var vis = HypercoreClient.Connect(_server.GrpcAddress);
        var byVis = await vis.CreateMicroVmAsync(new MicroVmTemplate { Name = "from-vis", Namespace = "shared", Image = Kernel, MemoryInMb = 128 });

        var expected = new[] { "from-seed", "from-flintlock", "from-vis" };
        (await _flintlock.ListMicroVMsAsync(new ListMicroVMsRequest { Namespace = "shared" })).Microvm.Select(m => m.Spec.Id).Should().BeEquivalentTo(expected);
        (await seed.ListAsync(new Seed.ListMicroVMsRequest { Namespace = "shared" })).Microvm.Select(m => m.Spec.Id).Should().BeEquivalentTo(expected);
        (await vis.ListMicroVmsAsync("shared")).Select(m => m.Spec.Id).Should().BeEquivalentTo(expected);

        var streamed = new List<string>();
        using (var call = _flintlock.ListMicroVMsStream(new ListMicroVMsRequest { Namespace = "shared" }))
        {
            await foreach (var message in call.ResponseStream.ReadAllAsync())
            {
                streamed.Add(message.Microvm.Spec.Uid);
            }
        }

        streamed.Should().BeEquivalentTo([bySeed.Spec.Uid, byFlintlock.Spec.Uid, byVis.Spec.Uid]);
        (await seed.GetAsync(new Seed.GetMicroVMRequest { Uid = byFlintlock.Spec.Uid })).Microvm.Spec.Interfaces[0].GuestMac.Should().Be("02:00:00:00:00:0a");
        (await _flintlock.GetMicroVMAsync(new GetMicroVMRequest { Uid = byVis.Spec.Uid })).Microvm.Spec.Id.Should().Be("from-vis");
        (await vis.GetMicroVmAsync("from-seed", "shared")).Spec.Uid.Should().Be(bySeed.Spec.Uid);

        await _flintlock.DeleteMicroVMAsync(new DeleteMicroVMRequest { Uid = bySeed.Spec.Uid });
        (await vis.GetMicroVmAsync("from-seed", "shared")).Status.Deleting.Should().BeTrue();
    }

    [Test]
    public async Task HttpRoutes_AsFlintlocksGateway_CreateGetListDelete()
    {
        var spec = JsonNode.Parse($$$"""
            {"id":"http1","namespace":"gw","vcpu":1,"memoryInMb":128,"kernel":{"image":"{{{Kernel}}}","addNetworkConfig":true},
             "interfaces":[{"deviceId":"eth0","type":"TAP","guestMac":"02:00:00:00:00:21","address":{"address":"10.9.0.2/24"}}]}
            """);

        using var post = await _server.Http.PostAsJsonAsync("/v1alpha1/microvm", spec);
        post.StatusCode.Should().Be(HttpStatusCode.OK, await post.Content.ReadAsStringAsync());
        var uid = (string)JsonNode.Parse(await post.Content.ReadAsStringAsync())!["microvm"]!["spec"]!["uid"]!;

        var got = JsonNode.Parse(await _server.Http.GetStringAsync($"/v1alpha1/microvm/{uid}"))!;
        ((string)got["microvm"]!["spec"]!["interfaces"]![0]!["guestMac"]!).Should().Be("02:00:00:00:00:21");
        ((string)got["microvm"]!["status"]!["state"]!).Should().Be("PENDING");

        var list = JsonNode.Parse(await _server.Http.GetStringAsync("/v1alpha1/microvm?namespace=gw"))!;
        list["microvm"]!.AsArray().Select(m => (string)m!["spec"]!["id"]!).Should().Equal("http1");

        using var delete = await _server.Http.DeleteAsync($"/v1alpha1/microvm/{uid}");
        delete.StatusCode.Should().Be(HttpStatusCode.OK);
        using var missing = await _server.Http.GetAsync("/v1alpha1/microvm/no-such-uid");
        missing.StatusCode.Should().Be(HttpStatusCode.NotFound);
        (await missing.Content.ReadAsStringAsync()).Should().Contain("not found");
    }
}

using Google.Protobuf;
using Grpc.Core;
using Hypercore.Api.MicroVms;
using Hypercore.Operations;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Contracts.VmApi;
using Hypercore.Store;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Api.Tests.MicroVms;

public sealed class VmServiceCreateTests
{
    /// <summary>The request from the task, as grpcurl would send it.</summary>
    public const string GrpcurlJson =
        """{"microvm":{"id":"web1","namespace":"demo","vcpu":1,"memoryInMb":128,"kernel":{"image":"/var/lib/hypercore/images/default/vmlinuz","cmdline":{"console":"ttyS0"}},"provider":"qemu"}}""";

    /// <summary>The seed README's example; every field of it is a field of this API (overrides.bridge_name included).</summary>
    public const string SeedJson = """
        {
            "microvm": {
              "id": "14",
              "labels": {},
              "vcpu": 2,
              "memoryInMb": 1024,
              "additionalVolumes": [],
              "interfaces": [
                {
                  "type": "TAP",
                  "guestMac": "02:FC:00:00:00:00",
                  "overrides": { "bridgeName": "eth0" },
                  "address": { "address": "192.254.0.22/32" },
                  "deviceId": "eth0"
                }
              ],
              "metadata": {},
              "kernel": { "image": "/tmp/test", "addNetworkConfig": true },
              "uid": "testinguid",
              "provider": "firecracker",
              "rootVolume": { "id": "1" },
              "namespace": "test-b8"
            },
            "metadata": {}
        }
        """;

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

    [Test]
    public void Services_TheMicroVmServicesAreSingletons_SoNoCallConstructsOne()
    {
        // Issue 15 (alloc7): gRPC's activator takes a service registered in DI; one that is not is constructed per
        // call through ActivatorUtilities (reflection under Native AOT, an instance and an argument array each time).
        var services = _server.Services;
        services.GetService<VmServiceImpl>().Should().NotBeNull().And.BeSameAs(services.GetService<VmServiceImpl>());
        services.GetService<Hypercore.Api.Flintlock.FlintlockMicroVmService>().Should().NotBeNull()
            .And.BeSameAs(services.GetService<Hypercore.Api.Flintlock.FlintlockMicroVmService>());
    }

    [Test]
    public async Task Create_GrpcurlShapedJson_IsAcceptedAndStored()
    {
        var request = JsonParser.Default.Parse<CreateMicroVMRequest>(GrpcurlJson);

        var reply = await _server.Vms.CreateAsync(request);

        var spec = reply.Microvm.Spec;
        spec.Uid.Should().NotBeNullOrEmpty();
        spec.Id.Should().Be("web1");
        spec.Namespace.Should().Be("demo");
        spec.Provider.Should().Be("qemu");
        spec.Kernel.Image.Should().Be("/var/lib/hypercore/images/default/vmlinuz");
        spec.Kernel.Cmdline.Should().Contain("console", "ttyS0");
        spec.State.Should().Be("Running");
        spec.RestartPolicy.Should().Be("Always");
        spec.Generation.Should().Be(1);
        reply.Microvm.Status.Phase.Should().Be("Pending");

        var stored = await _server.StoredAsync();
        stored.Should().ContainSingle().Which.Uid.Should().Be(spec.Uid);
        stored[0].Spec.MemoryInMb.Should().Be(128);
        stored[0].Spec.Kernel.Cmdline.Should().Contain("console", "ttyS0");
    }

    [Test]
    public async Task Create_SeedExampleWithUnregisteredFirecracker_ReturnsInvalidArgumentNamingProviders()
    {
        var request = new JsonParser(JsonParser.Settings.Default.WithIgnoreUnknownFields(false)).Parse<CreateMicroVMRequest>(SeedJson);

        var act = async () => await _server.Vms.CreateAsync(request, new Metadata { { "tmptmp", "1" } });

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("\"firecracker\"").And.Contain("qemu, unikernel");
        ex.Status.Detail.Should().Contain("host_path", "the root volume has no source either");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_SeedExampleWithQemuAndHostPath_IsAcceptedDespiteExtraHeader()
    {
        var request = new JsonParser(JsonParser.Settings.Default.WithIgnoreUnknownFields(false)).Parse<CreateMicroVMRequest>(SeedJson);
        request.Microvm.Provider = "qemu";
        request.Microvm.RootVolume.Source = new VolumeSource { HostPath = "/tmp/root.img" };

        var reply = await _server.Vms.CreateAsync(request, new Metadata { { "tmptmp", "1" } });

        reply.Microvm.Spec.Uid.Should().NotBe("testinguid", "the uid is assigned by the store");
        reply.Microvm.Spec.Interfaces.Should().ContainSingle().Which.Type.Should().Be(NetworkInterface.Types.IfaceType.Tap);
        reply.Microvm.Spec.Interfaces[0].Address.Address.Should().Be("192.254.0.22/32");
        reply.Microvm.Spec.Interfaces[0].GuestMac.Should().Be("02:FC:00:00:00:00");
        reply.Microvm.Spec.Interfaces[0].Overrides.BridgeName.Should().Be("eth0");
        (await _server.StoredAsync()).Should().ContainSingle().Which.Key.Should().Be(new Hypercore.MicroVms.VmKey("test-b8", "14"));
    }

    [Test]
    public async Task Create_EmptyIdNamespaceAndProvider_AppliesDefaults()
    {
        var reply = await _server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec { Vcpu = 1, MemoryInMb = 64, Kernel = new Kernel { Image = "/boot/vmlinuz" } },
        });

        reply.Microvm.Spec.Id.Should().MatchRegex("^vm-[0-9a-f]{8}$");
        reply.Microvm.Spec.Namespace.Should().Be("default");
        reply.Microvm.Spec.Provider.Should().Be("qemu");
        (await _server.StoredAsync()).Should().ContainSingle().Which.Spec.Provider.Should().Be("qemu");
    }

    [Test]
    public async Task Create_GeneratedIdCollides_PicksAnotherId()
    {
        await using var server = await ApiTestServer.StartAsync(
            services: s => s.AddSingleton<IMicroVmIdGenerator>(new SequenceIds("vm-00000001", "vm-00000001", "vm-00000002")));
        var request = new CreateMicroVMRequest { Microvm = new MicroVMSpec { Vcpu = 1, MemoryInMb = 64, Kernel = new Kernel { Image = "/boot/vmlinuz" } } };

        var first = await server.Vms.CreateAsync(request);
        var second = await server.Vms.CreateAsync(request);

        first.Microvm.Spec.Id.Should().Be("vm-00000001");
        second.Microvm.Spec.Id.Should().Be("vm-00000002");
        (await server.StoredAsync()).Should().HaveCount(2);
    }

    [Test]
    public async Task Create_ImageName_ResolvesKernelAndInitrdFromImageDirectory()
    {
        var dir = _server.AddImage("default", initrd: true);

        var reply = await _server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec { Id = "img1", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "default" } },
        });

        reply.Microvm.Spec.Kernel.Image.Should().Be(Path.Combine(dir, "vmlinuz"));
        reply.Microvm.Spec.Initrd.Image.Should().Be(Path.Combine(dir, "initrd.img"));
        reply.Microvm.Spec.RootVolume.Should().BeNull("the image has no rootfs.img");
        reply.Microvm.Spec.Labels.Should().Contain("hypercore.vistara.dev/image", "default");
    }

    [Test]
    public async Task Create_ImageWithRootfs_AttachesItReadOnlyUnlessARootVolumeIsGiven()
    {
        var dir = _server.AddImage("disk", rootfsBytes: 3 * 1024 * 1024);

        var implicitRoot = await _server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec { Id = "a", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "disk" } },
        });
        var explicitRoot = await _server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec
            {
                Id = "b", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "disk" },
                RootVolume = new Volume { Id = "mine", Source = new VolumeSource { HostPath = "/srv/b.img" } },
            },
        });

        implicitRoot.Microvm.Spec.RootVolume.Source.HostPath.Should().Be(Path.Combine(dir, "rootfs.img"));
        implicitRoot.Microvm.Spec.RootVolume.IsReadOnly.Should().BeTrue();
        implicitRoot.Microvm.Spec.RootVolume.SizeInMb.Should().Be(3);
        explicitRoot.Microvm.Spec.RootVolume.Source.HostPath.Should().Be("/srv/b.img");
    }

    [Test]
    public async Task Create_UnknownImage_ReturnsInvalidArgumentListingImagesAndWritesNothing()
    {
        _server.AddImage("default");
        _server.AddImage("alpine");
        Directory.CreateDirectory(Path.Combine(_server.ImageDirectory, "no-kernel"));

        var act = async () => await _server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec { Id = "x", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "ubuntu" } },
        });

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("\"ubuntu\"").And.Contain("images found: alpine, default");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_DuplicateId_ReturnsAlreadyExistsAndKeepsTheFirst()
    {
        var request = JsonParser.Default.Parse<CreateMicroVMRequest>(GrpcurlJson);
        var first = await _server.Vms.CreateAsync(request);
        request.Microvm.Vcpu = 4;

        var act = async () => await _server.Vms.CreateAsync(request);

        (await act.Should().ThrowAsync<RpcException>()).Which.StatusCode.Should().Be(StatusCode.AlreadyExists);
        var stored = await _server.StoredAsync();
        stored.Should().ContainSingle().Which.Uid.Should().Be(first.Microvm.Spec.Uid);
        stored[0].Spec.Vcpu.Should().Be(1);
    }

    public static IEnumerable<TestCaseData> MalformedRequests()
    {
        static CreateMicroVMRequest Valid()
        {
            var r = JsonParser.Default.Parse<CreateMicroVMRequest>(GrpcurlJson);
            return r;
        }

        static TestCaseData Case(string name, Action<CreateMicroVMRequest> change, string expected)
        {
            var r = Valid();
            change(r);
            return new TestCaseData(r, expected).SetName("Create_" + name + "_ReturnsInvalidArgumentAndWritesNothing");
        }

        yield return new TestCaseData(new CreateMicroVMRequest(), "microvm is required").SetName("Create_MissingMicrovm_ReturnsInvalidArgumentAndWritesNothing");
        yield return Case("ZeroVcpu", r => r.Microvm.Vcpu = 0, "vcpu");
        yield return Case("TooManyVcpus", r => r.Microvm.Vcpu = 65, "vcpu");
        yield return Case("TinyMemory", r => r.Microvm.MemoryInMb = 8, "memory_in_mb");
        yield return Case("UppercaseId", r => r.Microvm.Id = "Web_1", "id \"Web_1\"");
        yield return Case("BadNamespace", r => r.Microvm.Namespace = "a b", "namespace");
        yield return Case("MissingKernel", r => r.Microvm.Kernel = null, "kernel.image is required");
        yield return Case("UnknownState", r => r.Microvm.State = "Sleeping", "state \"Sleeping\"");
        yield return Case("UnknownRestartPolicy", r => r.Microvm.RestartPolicy = "Sometimes", "restart_policy \"Sometimes\"");
        yield return Case("NumericState", r => r.Microvm.State = "1", "state \"1\"");
        yield return Case("ContainerSourceWithoutRegistryHost", r => r.Microvm.AdditionalVolumes.Add(new Volume
        {
            Id = "data", Source = new VolumeSource { ContainerSource = "data:latest" },
        }), "source.container_source \"data:latest\" is not an OCI image reference");
        yield return Case("ReadOnlyContainerSourceWithSize", r => r.Microvm.AdditionalVolumes.Add(new Volume
        {
            Id = "data", IsReadOnly = true, SizeInMb = 512, Source = new VolumeSource { ContainerSource = "localhost:5000/data:1" },
        }), "volume \"data\" is read-only and shares the image's cached disk, which is never grown");
        yield return Case("MalformedKernelReference", r => r.Microvm.Kernel.Image = "localhost:5000/hypercore/default:bad tag", "kernel.image: image reference");
        yield return Case("VirtiofsVolume", r => r.Microvm.AdditionalVolumes.Add(new Volume
        {
            Id = "share", Source = new VolumeSource { VirtiofsSource = "/srv" },
        }), "virtiofs_source is not supported");
        yield return Case("BadGuestMac", r => r.Microvm.Interfaces.Add(new NetworkInterface { DeviceId = "eth0", GuestMac = "zz" }), "guest_mac");
        yield return Case("ThreeNameservers", r => r.Microvm.Interfaces.Add(new NetworkInterface
        {
            DeviceId = "eth0", Address = new StaticAddress { Address = "10.0.0.2/24", Nameservers = { "10.0.0.53", "10.0.0.54", "10.0.0.55" } },
        }), "at most 2 are supported (the kernel's ip= argument carries dns0 and dns1)");
        yield return Case("Ipv6Nameserver", r => r.Microvm.Interfaces.Add(new NetworkInterface
        {
            DeviceId = "eth0", Address = new StaticAddress { Address = "10.0.0.2/24", Nameservers = { "2001:db8::53" } },
        }), "nameserver \"2001:db8::53\" is not an IPv4 address");
        yield return Case("PartitionIdOnAdditionalVolume", r => r.Microvm.AdditionalVolumes.Add(new Volume
        {
            Id = "data", PartitionId = "6c2a6b1e-01", SizeInMb = 16,
        }), "partition_id is only allowed on the root volume");
        yield return Case("PartitionIdNotHex", r => r.Microvm.RootVolume = new Volume { Id = "root", PartitionId = "root; rm -rf", SizeInMb = 16 }, "partition_id \"root; rm -rf\" is not a PARTUUID");
        yield return Case("UnknownProvider", r => r.Microvm.Provider = "vmware", "available providers: qemu, unikernel");
        yield return Case("CmdlineValueWithSpace", r => r.Microvm.Kernel.Cmdline["init"] = "/bin/sh -x", "kernel.cmdline");

        // Node networking (issue 12): interfaces[].ports.
        yield return Case("PortProtocolSctp", r => r.Microvm.Interfaces.Add(new NetworkInterface
        {
            DeviceId = "eth0", Type = NetworkInterface.Types.IfaceType.Tap, Ports = { new PortMapping { HostPort = 8080, GuestPort = 80, Protocol = "sctp" } },
        }), "ports protocol \"sctp\" must be tcp or udp");
        yield return Case("HostPortZero", r => r.Microvm.Interfaces.Add(new NetworkInterface
        {
            DeviceId = "eth0", Type = NetworkInterface.Types.IfaceType.Tap, Ports = { new PortMapping { HostPort = 0, GuestPort = 80 } },
        }), "ports host_port 0 must be between 1 and 65535");
        yield return Case("HostPortTwice", r =>
        {
            r.Microvm.Interfaces.Add(new NetworkInterface { DeviceId = "eth0", Type = NetworkInterface.Types.IfaceType.Tap, Ports = { new PortMapping { HostPort = 8080, GuestPort = 80 } } });
            r.Microvm.Interfaces.Add(new NetworkInterface { DeviceId = "eth1", Type = NetworkInterface.Types.IfaceType.Tap, Ports = { new PortMapping { HostPort = 8080, GuestPort = 81 } } });
        }, "host port tcp 8080 is forwarded more than once");
    }

    [TestCaseSource(nameof(MalformedRequests))]
    public async Task Create_Malformed(CreateMicroVMRequest request, string expected)
    {
        var before = await _server.StoredAsync();

        var act = async () => await _server.Vms.CreateAsync(request);

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain(expected);
        before.Should().BeEmpty();
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_SeveralProblems_ReportsAllOfThem()
    {
        var request = JsonParser.Default.Parse<CreateMicroVMRequest>(GrpcurlJson);
        request.Microvm.Vcpu = 0;
        request.Microvm.MemoryInMb = 1;
        request.Microvm.State = "Up";

        var act = async () => await _server.Vms.CreateAsync(request);

        var detail = (await act.Should().ThrowAsync<RpcException>()).Which.Status.Detail;
        detail.Should().Contain("vcpu").And.Contain("memory_in_mb").And.Contain("state \"Up\"");
    }

    [Test]
    public async Task Create_StoreUnavailable_ReturnsUnavailable()
    {
        _server.Store.Outage = new StoreException("database is locked");

        var act = async () => await _server.Vms.CreateAsync(JsonParser.Default.Parse<CreateMicroVMRequest>(GrpcurlJson));

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.Unavailable);
        ex.Status.Detail.Should().Contain("database is locked");
        _server.Store.Outage = null;
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    private sealed class SequenceIds(params string[] ids) : IMicroVmIdGenerator
    {
        private int _next;

        public string NewId() => ids[Math.Min(_next++, ids.Length - 1)];
    }
}

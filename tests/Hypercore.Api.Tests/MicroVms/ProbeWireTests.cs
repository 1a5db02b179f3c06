using System.Net;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using Hypercore.Api.MicroVms;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Contracts.VmApi;
using Hypercore.MicroVms;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Api.Tests.MicroVms;

/// <summary>Guest health (issue 14): probes on the wire (gRPC and HTTP/JSON), validated before anything is stored.</summary>
public sealed class ProbeWireTests
{
    private ApiTestServer _server = null!;

    [SetUp]
    public async Task SetUp() => _server = await ApiTestServer.StartAsync();

    [TearDown]
    public async Task TearDown() => await _server.DisposeAsync();

    [Test]
    public async Task CreateOverHttpJson_WithProbes_StoredWithKubernetesDefaultsAndReturned()
    {
        const string body = """
            {"microvm":{"id":"web1","namespace":"demo","vcpu":1,"memoryInMb":128,"kernel":{"image":"/boot/vmlinuz"},
              "interfaces":[{"deviceId":"eth0","type":"TAP","address":{"address":"10.20.0.2/24"}}],
              "readinessProbe":{"console":{"regex":"HYPERCORE-GUEST-READY"},"periodSeconds":1},
              "livenessProbe":{"httpGet":{"port":8080,"path":"/healthz"},"initialDelaySeconds":30,"failureThreshold":5}}}
            """;

        using var response = await _server.Http.PostAsync("/v1/microvms", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();

        response.StatusCode.Should().Be(HttpStatusCode.OK, text);
        var spec = JsonDocument.Parse(text).RootElement.GetProperty("microvm").GetProperty("spec");
        spec.GetProperty("readinessProbe").GetProperty("console").GetProperty("regex").GetString().Should().Be("HYPERCORE-GUEST-READY");
        spec.GetProperty("livenessProbe").GetProperty("httpGet").GetProperty("path").GetString().Should().Be("/healthz");
        var stored = (await _server.StoredAsync()).Should().ContainSingle().Which.Spec;
        stored.ReadinessProbe.Should().Be(new ProbeSpec
        {
            Console = new Hypercore.MicroVms.ConsoleProbe("HYPERCORE-GUEST-READY"), PeriodSeconds = 1, TimeoutSeconds = 1, FailureThreshold = 3,
        });
        stored.LivenessProbe.Should().Be(new ProbeSpec
        {
            HttpGet = new Hypercore.MicroVms.HttpGetProbe(8080, "/healthz"), InitialDelaySeconds = 30, PeriodSeconds = 10, TimeoutSeconds = 1, FailureThreshold = 5,
        });
    }

    [Test]
    public async Task CreateOverGrpc_BadProbe_InvalidArgumentNamingTheFieldAndNothingStored()
    {
        var act = async () => await _server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec
            {
                Id = "bad", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" },
                ReadinessProbe = new Probe { Console = new Hypercore.Contracts.VmApi.ConsoleProbe { Regex = "([" } },
                LivenessProbe = new Probe { TcpSocket = new Hypercore.Contracts.VmApi.TcpSocketProbe { Port = 22 } },
            },
        });

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("readiness_probe.console.regex \"([\" is not a valid .NET regular expression")
            .And.Contain("liveness_probe: tcp_socket and http_get probe the guest's address, and this VM has no network interface");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task CreateOverGrpc_TcpProbeToAStaticAddressTheNodeDoesNotGive_InvalidArgumentSayingHowToAllowItAndNothingStored()
    {
        await using var server = await ApiTestServer.StartAsync(services: s =>
            s.AddSingleton(Hypercore.GuestHealth.ProbeTargetPolicy.For(new Hypercore.GuestHealth.GuestHealthOptions())));
        var spec = new MicroVMSpec
        {
            Id = "steer", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" },
            ReadinessProbe = new Probe { TcpSocket = new Hypercore.Contracts.VmApi.TcpSocketProbe { Port = 6379 } },
        };
        spec.Interfaces.Add(new NetworkInterface { DeviceId = "eth0", Type = NetworkInterface.Types.IfaceType.Tap, Address = new StaticAddress { Address = "172.31.0.10/24" } });

        var act = async () => await server.Vms.CreateAsync(new CreateMicroVMRequest { Microvm = spec });

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("readiness_probe: the guest address 172.31.0.10 was not given to the VM by this node")
            .And.Contain("add a CIDR holding 172.31.0.10 to probe-allowed-cidrs (Health:AllowedCidrs) to allow it on purpose");
        (await server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task CreateOverGrpc_TcpProbeToAStaticAddressInsideProbeAllowedCidrs_Stored()
    {
        await using var server = await ApiTestServer.StartAsync(services: s =>
            s.AddSingleton(Hypercore.GuestHealth.ProbeTargetPolicy.For(new Hypercore.GuestHealth.GuestHealthOptions { AllowedCidrs = "172.31.0.0/24" })));
        var spec = new MicroVMSpec
        {
            Id = "allowed", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" },
            ReadinessProbe = new Probe { TcpSocket = new Hypercore.Contracts.VmApi.TcpSocketProbe { Port = 22 } },
        };
        spec.Interfaces.Add(new NetworkInterface { DeviceId = "eth0", Type = NetworkInterface.Types.IfaceType.Tap, Address = new StaticAddress { Address = "172.31.0.10/24" } });

        await server.Vms.CreateAsync(new CreateMicroVMRequest { Microvm = spec });

        (await server.StoredAsync()).Should().ContainSingle();
    }

    [Test]
    public async Task CreateOverHttpJsonAndGrpc_StartupProbe_StoredWithDefaultsReturnedAndValidated()
    {
        const string body = """
            {"microvm":{"id":"slow","vcpu":1,"memoryInMb":128,"kernel":{"image":"/boot/vmlinuz"},
              "startupProbe":{"console":{"regex":"APP-STARTED"},"periodSeconds":5,"failureThreshold":60}}}
            """;

        using var response = await _server.Http.PostAsync("/v1/microvms", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();

        response.StatusCode.Should().Be(HttpStatusCode.OK, text);
        var returned = JsonDocument.Parse(text).RootElement.GetProperty("microvm").GetProperty("spec").GetProperty("startupProbe");
        returned.GetProperty("console").GetProperty("regex").GetString().Should().Be("APP-STARTED");
        returned.GetProperty("failureThreshold").GetInt32().Should().Be(60);
        (await _server.StoredAsync()).Should().ContainSingle().Which.Spec.StartupProbe.Should().Be(new ProbeSpec
        {
            Console = new Hypercore.MicroVms.ConsoleProbe("APP-STARTED"), PeriodSeconds = 5, TimeoutSeconds = 1, FailureThreshold = 60,
        });

        var act = async () => await _server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec
            {
                Id = "bad-startup", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" },
                StartupProbe = new Probe { Console = new Hypercore.Contracts.VmApi.ConsoleProbe { Regex = "x" }, FailureThreshold = 5000 },
            },
        });

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("startup_probe.failure_threshold must be between 1 and 1000, got 5000");
        (await _server.StoredAsync()).Should().ContainSingle("nothing more was written");
    }

    [Test]
    public void StatusToProto_GuestReadyTimes_OnTheWire()
    {
        var at = new DateTimeOffset(2026, 11, 29, 20, 0, 0, TimeSpan.Zero);
        var status = MicroVmStatus.Initial with { GuestReadyTime = at, GuestReadySeconds = 8.25 };

        var proto = Mapping.ToProto(status, deleting: false);

        proto.GuestReadyTime.ToDateTimeOffset().Should().Be(at);
        proto.HasGuestReadySeconds.Should().BeTrue();
        proto.GuestReadySeconds.Should().Be(8.25);
        Mapping.ToProto(MicroVmStatus.Initial, deleting: false).HasGuestReadySeconds.Should().BeFalse("unset until the guest was first ready");
    }

    // snapshots (issue 14): status fields 160-162.
    [Test]
    public void StatusToProto_SnapshotFields_OnTheWire()
    {
        var at = new DateTimeOffset(2026, 11, 29, 23, 40, 0, TimeSpan.Zero);
        var status = MicroVmStatus.Initial with { RestoredFrom = "snap1", LastSnapshot = "snap2", LastSnapshotTime = at };

        var proto = Mapping.ToProto(status, deleting: false);

        proto.RestoredFrom.Should().Be("snap1");
        proto.LastSnapshot.Should().Be("snap2");
        proto.LastSnapshotTime.ToDateTimeOffset().Should().Be(at);
        var json = Google.Protobuf.JsonFormatter.Default.Format(proto);
        json.Should().Contain("\"restoredFrom\": \"snap1\"").And.Contain("\"lastSnapshot\": \"snap2\"").And.Contain("\"lastSnapshotTime\": \"2026-11-29T23:40:00Z\"");
        var boot = Mapping.ToProto(MicroVmStatus.Initial, deleting: false);
        boot.RestoredFrom.Should().BeEmpty();
        boot.LastSnapshotTime.Should().BeNull();
        Hypercore.Contracts.VmApi.MicroVMStatus.Descriptor.FindFieldByName("restored_from").FieldNumber.Should().Be(160);
        Hypercore.Contracts.VmApi.MicroVMStatus.Descriptor.FindFieldByName("last_snapshot").FieldNumber.Should().Be(161);
        Hypercore.Contracts.VmApi.MicroVMStatus.Descriptor.FindFieldByName("last_snapshot_time").FieldNumber.Should().Be(162);
    }
}

using System.Runtime.Versioning;
using Google.Protobuf;
using Grpc.Core;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Contracts.VmApi;
using Hypercore.Daemon.Hosting;
using Hypercore.HostAccess;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Api.Tests.MicroVms;

/// <summary>
/// A TAP interface's bridge joins the guest to the host network that bridge carries, and a port forward takes a host port
/// on every address of the node, so Create refuses a bridge (network-allowed-bridges; the managed bridge with
/// network-managed) or a host port (network-forward-ports, default 30000-32767) the node was not given, before anything
/// is written.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class AllowedBridgesCreateTests
{
    private ApiTestServer _server = null!;

    [SetUp]
    public async Task SetUp() => _server = await ApiTestServer.StartAsync(services: s => s.AddSingleton(new HostNetworkPolicy(["br0"])));

    [TearDown]
    public async Task TearDown() => await _server.DisposeAsync();

    private static CreateMicroVMRequest Request(Action<NetworkInterface> nic)
    {
        var request = JsonParser.Default.Parse<CreateMicroVMRequest>(VmServiceCreateTests.GrpcurlJson);
        var eth0 = new NetworkInterface { DeviceId = "eth0", Type = NetworkInterface.Types.IfaceType.Tap };
        nic(eth0);
        request.Microvm.Interfaces.Add(eth0);
        return request;
    }

    [TestCase("bridge")]
    [TestCase("overrides.bridge_name")]
    public async Task Create_BridgeNotAllowed_ReturnsInvalidArgumentNamingTheSettingAndWritesNothing(string field)
    {
        var request = Request(nic =>
        {
            if (field == "bridge") nic.Bridge = "docker0";
            else nic.Overrides = new NetworkOverrides { BridgeName = "docker0" };
        });

        var act = async () => await _server.Vms.CreateAsync(request);

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("interfaces[0] \"eth0\": bridge \"docker0\" is not one this node puts guests on (allowed: br0)")
            .And.Contain("add it to the vistarad setting network-allowed-bridges (--network-allowed-bridges br0,docker0)");
        (await _server.StoredAsync()).Should().BeEmpty();
        _server.Drivers.Sum(d => d.Operations).Should().Be(0);
    }

    [Test]
    public async Task Create_AllowedBridgeAndBareTap_AreStored()
    {
        await _server.Vms.CreateAsync(Request(nic => nic.Bridge = "br0"));
        var bare = Request(_ => { });
        bare.Microvm.Id = "web2";
        await _server.Vms.CreateAsync(bare);

        var stored = await _server.StoredAsync();
        stored.Select(v => v.Spec.Interfaces[0].Bridge).Should().BeEquivalentTo(["br0", null]);
    }

    [Test]
    public async Task Create_ForwardOfAHostServicesPort_ReturnsInvalidArgumentNamingTheSetting_AndOneInTheRangeIsStored()
    {
        var refused = Request(nic => nic.Ports.Add(new PortMapping { HostPort = 22, GuestPort = 22 }));

        var act = async () => await _server.Vms.CreateAsync(refused);

        var ex = (await act.Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("interfaces[0] \"eth0\": host port tcp 22 is not one this node forwards (allowed: 30000-32767)")
            .And.Contain("(--network-forward-ports 30000-32767,22)");
        (await _server.StoredAsync()).Should().BeEmpty();

        await _server.Vms.CreateAsync(Request(nic => nic.Ports.Add(new PortMapping { HostPort = 30080, GuestPort = 80 })));
        (await _server.StoredAsync()).Should().ContainSingle().Which.Spec.Interfaces[0].Ports.Should().ContainSingle().Which.HostPort.Should().Be(30080);
    }

    [TestCase(null, false, new string[0])]
    [TestCase("br0, virbr0", false, new[] { "br0", "virbr0" })]
    [TestCase("br0", true, new[] { "br0", "hcbr0" })]
    public async Task Daemon_Settings_ReachTheAllowListCreateChecks(string? allowed, bool managed, string[] expected)
    {
        var dir = Directory.CreateTempSubdirectory("hypercore-bridges-settings-");
        try
        {
            await using var app = DaemonHost.Build(new Dictionary<string, string?>
            {
                ["Daemon:StateDirectory"] = dir.FullName,
                ["Daemon:GrpcEndpoint"] = "127.0.0.1:0",
                ["Daemon:HttpEndpoint"] = "127.0.0.1:0",
                ["Network:AllowedBridges"] = allowed,
                ["Network:Managed"] = managed ? "true" : null,
            }, new BoundEndpoints());

            var policy = app.Services.GetRequiredService<HostNetworkPolicy>();
            policy.Bridges.Should().Equal(expected);
            policy.ForwardPorts.Should().Be("30000-32767");
            app.Services.GetRequiredService<Hypercore.Networking.NodeNetwork>().Policy.Should().BeSameAs(policy, "Create and the network start step judge by one policy");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}

using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Networking.Tests;

/// <summary>A node namespace with a <see cref="NodeNetwork"/> that runs everything inside it, and a state directory.</summary>
public sealed class NodeUnderTest : IAsyncDisposable
{
    private NodeUnderTest(Netns node, string state, NodeNetworkOptions options)
    {
        Node = node;
        StateDirectory = state;
        Options = options;
        Network = NewNetwork();
    }

    public Netns Node { get; }

    public string StateDirectory { get; }

    public NodeNetworkOptions Options { get; }

    public NodeNetwork Network { get; private set; }

    public static async Task<NodeUnderTest> CreateAsync(bool nat = false, string macvtapParents = "")
    {
        var node = await Netns.CreateAsync("n");
        var state = Directory.CreateTempSubdirectory("hc-netw-state-").FullName;

        // dnsmasq drops to its own user and re-reads the hosts file as that user on SIGHUP.
        File.SetUnixFileMode(state, (UnixFileMode)0b111_101_101);
        var options = new NodeNetworkOptions
        {
            Managed = true,
            Bridge = "hcbr0",
            Cidr = "10.200.0.1/24",
            Nat = nat,
            MacvtapParents = macvtapParents,
            ForwardPorts = "8000-9999", // the host ports these tests forward, allowed on purpose (the default is 30000-32767)
            StateDirectory = state,
            NetworkNamespace = node.Name,
            NftTable = "hcnetw",
        };
        new NodeNetworkOptionsValidator().Validate(null, options).Failed.Should().BeFalse();
        return new NodeUnderTest(node, state, options);
    }

    public NodeNetwork NewNetwork() => new(Microsoft.Extensions.Options.Options.Create(Options), TimeProvider.System, NullLogger<NodeNetwork>.Instance);

    /// <summary>A daemon restart: a new NodeNetwork over the same state (the old one is dropped as a kill -9 would).</summary>
    public NodeNetwork Restart()
    {
        Network = NewNetwork();
        return Network;
    }

    public NetworkStartStep Step() => new(Network, NullLogger<NetworkStartStep>.Instance);

    public async Task StartAsync()
    {
        await Network.EnsureBridgeAsync(CancellationToken.None);
        await Network.SyncAsync(CancellationToken.None);
        await Network.EnsureDnsmasqAsync(CancellationToken.None);
    }

    public async Task<string> NftTablesAsync() => await Node.RunAsync("nft", "list", "tables");

    public async Task<string> LinksAsync() => await Node.RunAsync("ip", "-o", "link", "show");

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Network.TearDownAsync(CancellationToken.None);
        }
        finally
        {
            await Node.DisposeAsync();
            Directory.Delete(StateDirectory, recursive: true);
        }
    }

    public static MicroVm Vm(string id, params NetworkInterfaceSpec[] nics) => new()
    {
        Uid = Guid.NewGuid().ToString(),
        ResourceVersion = "1",
        Spec = new MicroVmSpec
        {
            Id = id,
            Kernel = new KernelSpec { Image = "/boot/vmlinuz" },
            Interfaces = nics,
        },
    };

    public static NetworkInterfaceSpec Nic(string device = "eth0", params PortForward[] ports) =>
        new() { DeviceId = device, Ports = ports };
}

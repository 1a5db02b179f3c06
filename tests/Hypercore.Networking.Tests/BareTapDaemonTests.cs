using Grpc.Core;
using Hypercore.Client;
using Hypercore.Contracts.VmApi;
using Hypercore.Testing;

namespace Hypercore.Networking.Tests;

/// <summary>
/// The shipped daemon without the managed network, inside a namespace the test made: a guest's bare tap gives it no
/// IPv6 link-local way into the host (the host side has IPv6 off), a bridge the node was not given is refused at
/// Create, and an allowed bridge gets the tap; deletes leave no tap.
/// </summary>
[NonParallelizable]
public sealed class BareTapDaemonTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);


    private static MicroVMSpec Spec(string id, string? bridge)
    {
        var spec = new MicroVMSpec { Id = id, Namespace = "default", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "default" } };
        var nic = new NetworkInterface { DeviceId = "eth0", Type = NetworkInterface.Types.IfaceType.Tap };
        if (bridge is not null) nic.Bridge = bridge;
        spec.Interfaces.Add(nic);
        return spec;
    }

    [Test]
    public async Task BareTap_HasNoHostIpv6_BridgeNotGivenIsRefused_AllowedBridgeGetsTheTap()
    {
        await using var ns = await Netns.CreateAsync("t");
        foreach (var bridge in new[] { "brok", "brother" })
        {
            await ns.RunAsync("ip", "link", "add", bridge, "type", "bridge");
            await ns.RunAsync("ip", "link", "set", bridge, "up");
        }

        var root = Directory.CreateTempSubdirectory("hc-netw-tap-").FullName;
        var state = Path.Combine(root, "state");
        await GuestImage.InstallAsDefaultAsync(state);
        string[] args =
        [
            "run", "--state-dir", state, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0",
            "--qemu-accel", "tcg", "--node-name", "tap-e2e", "--network-allowed-bridges", "brok",
        ];
        var daemon = DaemonProcess.StartInNetns(ns.Name, Netns.VistaradDll, args);
        try
        {
            await daemon.WaitReadyAsync(Patience);
            using var client = HypercoreClient.Connect("unix://" + Path.Combine(state, "vistarad.sock"));

            await client.CreateMicroVmAsync(Spec("bare", bridge: null));
            var bare = await client.WaitForPhaseAsync("bare", "Running", Patience);
            var tap = bare.Status.NetworkInterfaces["eth0"].HostDeviceName;
            (await ns.RunAsync("cat", $"/proc/sys/net/ipv6/conf/{tap}/disable_ipv6")).Trim().Should().Be("1");
            await Task.Delay(TimeSpan.FromSeconds(1)); // an up tap would have its fe80:: address by now
            (await ns.RunAsync("ip", "-6", "addr", "show", "dev", tap)).Trim().Should().BeEmpty("the guest gets no link-local path into the host");
            (await ns.RunAsync("ip", "-o", "link", "show", "dev", tap)).Should().Contain("state UP").And.NotContain("master");

            var refused = await FluentActions.Awaiting(() => client.CreateMicroVmAsync(Spec("other", "brother"))).Should().ThrowAsync<RpcException>();
            refused.Which.StatusCode.Should().Be(StatusCode.InvalidArgument);
            refused.Which.Status.Detail.Should().Contain("bridge \"brother\" is not one this node puts guests on (allowed: brok)")
                .And.Contain("--network-allowed-bridges brok,brother");
            (await client.TryGetMicroVmAsync("other")).Should().BeNull();

            await client.CreateMicroVmAsync(Spec("onbr", "brok"));
            var onbr = await client.WaitForPhaseAsync("onbr", "Running", Patience);
            var bridged = onbr.Status.NetworkInterfaces["eth0"].HostDeviceName;
            (await ns.RunAsync("ip", "-o", "link", "show", "dev", bridged)).Should().Contain("master brok");
            (await ns.RunAsync("ip", "-o", "link", "show", "master", "brother")).Trim().Should().BeEmpty();

            foreach (var id in new[] { "bare", "onbr" })
            {
                await client.DeleteMicroVmAsync(id);
                await client.WaitForDeletionAsync(id, Patience);
            }

            var links = (await ns.RunAsync("ip", "-o", "link", "show")).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split(':')[1].Trim().Split('@')[0]);
            links.Should().BeEquivalentTo(["lo", "brok", "brother"], "delete leaves no tap");
        }
        finally
        {
            TestContext.Progress.WriteLine(daemon.Stderr.Length > 4000 ? daemon.Stderr[^4000..] : daemon.Stderr);
            await daemon.DisposeAsync();
            ns.KillAllIn(); // QEMU guests live in the namespace
            await Task.Delay(500);
            Directory.Delete(root, recursive: true);
        }
    }
}

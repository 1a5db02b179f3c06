using System.Diagnostics;
using Hypercore.Drivers.Qemu;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Networking.Tests;

/// <summary>
/// A real QEMU guest (TCG) on a MACVTAP: the network step makes the macvtap on an allowed parent (a veth inside a
/// namespace the test made, whose peer sits in a second namespace), the QEMU driver hands QEMU its /dev/tapN as an
/// inherited fd, and the peer namespace pings the guest's static address.
/// </summary>
[NonParallelizable]
public sealed class QemuMacvtapTests
{
    [Test]
    public async Task Macvtap_QemuGuestWithStaticAddress_AnswersPingsFromTheParentsNetwork()
    {
        var image = await GuestImage.EnsureAsync();
        await using var node = await Netns.CreateAsync("m");
        await using var peer = await Netns.CreateAsync("p");
        await node.VethAsync("hcnp0", peer, "eth0");
        await peer.RunAsync("ip", "addr", "add", "10.202.0.1/24", "dev", "eth0");
        var runtime = Path.Combine("/tmp", "hcq-netw-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(runtime);
        var options = new NodeNetworkOptions { MacvtapParents = "hcnp0", NetworkNamespace = node.Name, StateDirectory = runtime + "-net" };
        using var network = new NodeNetwork(Options.Create(options), TimeProvider.System, NullLogger<NodeNetwork>.Instance);
        var step = new NetworkStartStep(network, NullLogger<NetworkStartStep>.Instance);
        using var driver = new QemuDriver(Options.Create(new QemuOptions { RuntimeDirectory = runtime, Accelerator = "tcg" }), TimeProvider.System, NullLogger<QemuDriver>.Instance);
        var vm = new MicroVm
        {
            Uid = Guid.NewGuid().ToString(),
            ResourceVersion = "1",
            Spec = new MicroVmSpec
            {
                Id = "mvt",
                Kernel = new KernelSpec { Image = Path.Combine(image, "vmlinuz"), AddNetworkConfig = true },
                Initrd = new InitrdSpec { Image = Path.Combine(image, "initrd.img") },
                Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", Type = InterfaceType.Macvtap, Address = "10.202.0.2/24" }],
            },
        };
        try
        {
            var context = new StartContext(vm);
            var prepared = await step.PrepareAsync(context, CancellationToken.None);
            prepared.Outcome.Should().Be(StartStepOutcome.Proceed, prepared.Message);

            var info = await driver.StartAsync(context);

            HostProcess.CommandLine(info.Pid!.Value).Should().Contain(a => a.StartsWith("tap,id=net0,fd=3", StringComparison.Ordinal));
            var console = Path.Combine(runtime, vm.Uid, "console.log");
            var sw = Stopwatch.StartNew();
            while (!(File.Exists(console) && (await File.ReadAllTextAsync(console)).Contains(GuestImage.ReadyLine, StringComparison.Ordinal)))
            {
                sw.Elapsed.Should().BeLessThan(TimeSpan.FromMinutes(3), "the guest should boot");
                await Task.Delay(200);
            }

            var ping = await PingAsync(peer, "10.202.0.2", TimeSpan.FromSeconds(60));
            ping.Should().BeTrue("the guest on the macvtap answers on the parent's network");
            TestContext.Progress.WriteLine($"[measure] macvtap guest ready and answering ping after {sw.Elapsed.TotalSeconds:0.0} s");

            await driver.CleanupAsync(vm);
            await step.ReleaseAsync(vm, CancellationToken.None);
            (await node.TryAsync("ip", "link", "show", "dev", NetworkStartStep.MacvtapName(vm.Uid, 0))).Succeeded.Should().BeFalse("delete leaves no macvtap");
        }
        finally
        {
            await driver.CleanupAsync(vm);
            Directory.Delete(runtime, recursive: true);
            if (Directory.Exists(runtime + "-net"))
            {
                Directory.Delete(runtime + "-net", recursive: true);
            }
        }
    }

    internal static async Task<bool> PingAsync(Netns from, string address, TimeSpan within)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < within)
        {
            if ((await from.TryAsync("busybox", "ping", "-c", "1", "-W", "2", address)).Succeeded)
            {
                return true;
            }
        }

        return false;
    }
}

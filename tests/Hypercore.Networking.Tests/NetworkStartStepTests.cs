using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypercore.Networking.Tests;

/// <summary>
/// Issue 15 (cpu10): the network step on a node without the managed network, for a VM without interfaces (every start
/// on most nodes, and the benchmark's): nothing to lease or make, so no lists, no copy of the VM and no allocation; the
/// status it gives still says "no interfaces, no port forwards", as the full path did.
/// </summary>
public sealed class NetworkStartStepTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    private static NodeNetwork Unmanaged() => new(
        Microsoft.Extensions.Options.Options.Create(new NodeNetworkOptions { StateDirectory = "/nonexistent/hc-netw" }), TimeProvider.System,
        NullLogger<NodeNetwork>.Instance);

    [Test]
    public async Task Prepare_NoInterfacesUnmanaged_LeavesTheVmAsItIsAndAllocatesNothing()
    {
        using var network = Unmanaged();
        var step = new NetworkStartStep(network, NullLogger<NetworkStartStep>.Instance);
        var vm = NodeUnderTest.Vm("plain");
        await step.PrepareAsync(new StartContext(vm), None); // first call: statics

        var context = new StartContext(vm);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var result = await step.PrepareAsync(context, None);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        result.Outcome.Should().Be(StartStepOutcome.Proceed);
        context.Vm.Should().BeSameAs(vm, "the driver needs no other view of a VM without interfaces");
        allocated.Should().Be(0);
        Directory.Exists("/nonexistent/hc-netw").Should().BeFalse();
    }

    [Test]
    public async Task Prepare_NoInterfacesUnmanaged_StatusSaysNoInterfacesAndNoForwards()
    {
        using var network = Unmanaged();
        var step = new NetworkStartStep(network, NullLogger<NetworkStartStep>.Instance);
        var result = await step.PrepareAsync(new StartContext(NodeUnderTest.Vm("plain")), None);
        var before = new MicroVmStatus
        {
            Interfaces = [new InterfaceStatus("eth0", "tap0", "02:00:00:00:00:01", "10.0.0.2/24")],
            Addresses = ["10.0.0.2"],
            PortForwards = ["tcp 8080 -> 10.0.0.2:80"],
        };

        var after = result.Status!(before);

        after.Interfaces.Should().BeEmpty("a spec that dropped its interfaces drops them from the status");
        after.PortForwards.Should().BeEmpty();
        after.Addresses.Should().Equal(["10.0.0.2"], "addresses are left as they were, as before");
        var empty = new MicroVmStatus();
        result.Status!(empty).Should().BeSameAs(empty, "nothing to change");
    }
}

using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>
/// The VMM drivers' per-VM gates (issue 15, survive7): one holder per uid at a time, and nothing kept for a VM nobody is
/// working on (the driver used to keep a semaphore per VM ever inspected, ~190 bytes each, for the record's life).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class VmGatesTests
{
    [Test]
    public async Task InspectAsync_ManyVmsWithNothingThere_KeepsNoStatePerVm()
    {
        await using var scratch = new Scratch();
        using var driver = new FirecrackerDriver(Options.Create(new FirecrackerOptions
        {
            BinaryPath = StandIns.Firecracker,
            RuntimeDirectory = scratch.RuntimeDirectory,
            RequireKvm = false,
        }), TimeProvider.System, NullLogger<FirecrackerDriver>.Instance);
        const int count = 10_000;
        var vms = Enumerable.Range(0, count).Select(i => new MicroVm
        {
            Uid = $"gate-{i:D6}-0000-0000-0000-000000000000",
            ResourceVersion = "1",
            Spec = new MicroVmSpec { Id = $"vm-{i}", Kernel = new KernelSpec { Image = scratch.Kernel } },
        }).ToArray();
        (await driver.InspectAsync(vms[0])).State.Should().Be(LiveState.NotFound); // first use: whatever it sets up once

        var before = GC.GetTotalMemory(forceFullCollection: true);
        foreach (var vm in vms)
        {
            (await driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
        }

        var kept = GC.GetTotalMemory(forceFullCollection: true) - before;
        GC.KeepAlive(vms);
        TestContext.Out.WriteLine($"retained after {count} inspects: {kept} bytes");

        // Base: a SemaphoreSlim, its lock box and a ConcurrentDictionary node per VM, and the dictionary's growth:
        // ~200 bytes each (2 MB here). Now nothing per VM (a few KB of noise from the runtime allowed).
        (kept / (double)count).Should().BeLessThan(20, "the driver keeps {0} bytes after {1} inspects of VMs with nothing running", kept, count);
        driver.GatesInUse.Should().Be(0);
    }

    [Test]
    public async Task EnterAsync_SameUid_OneHolderAtATimeInOrder_AndNoEntryOnceReleased()
    {
        var gates = new VmGates();
        var first = await gates.EnterAsync("a", CancellationToken.None);
        var second = gates.EnterAsync("a", CancellationToken.None).AsTask();
        var third = gates.EnterAsync("a", CancellationToken.None).AsTask();
        var other = await gates.EnterAsync("b", CancellationToken.None); // another uid is not held up

        await Task.Delay(50);
        second.IsCompleted.Should().BeFalse();
        third.IsCompleted.Should().BeFalse();
        gates.Count.Should().Be(2);

        first.Dispose();
        first.Dispose(); // a second dispose releases nothing more
        var secondHeld = await second.WaitAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(50);
        third.IsCompleted.Should().BeFalse("the second holder still has it");

        secondHeld.Dispose();
        (await third.WaitAsync(TimeSpan.FromSeconds(10))).Dispose();
        other.Dispose();
        gates.Count.Should().Be(0);

        // A pooled gate starts free again.
        (await gates.EnterAsync("a", CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10))).Dispose();
        gates.Count.Should().Be(0);
    }

    [Test]
    public async Task EnterAsync_CancelledWhileWaiting_DoesNotHoldAndLeavesTheGateToOthers()
    {
        var gates = new VmGates();
        var held = await gates.EnterAsync("a", CancellationToken.None);
        using var cts = new CancellationTokenSource();
        var waiting = gates.EnterAsync("a", cts.Token).AsTask();

        await cts.CancelAsync();
        await FluentActions.Awaiting(() => waiting).Should().ThrowAsync<OperationCanceledException>();
        gates.Count.Should().Be(1, "the holder still has it");

        held.Dispose();
        gates.Count.Should().Be(0);
        (await gates.EnterAsync("a", CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10))).Dispose();
        gates.Count.Should().Be(0);
    }
}

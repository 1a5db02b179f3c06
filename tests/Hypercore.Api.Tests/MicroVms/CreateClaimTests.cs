using Hypercore.Api.Tests.Hosting;
using Hypercore.Contracts.VmApi;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Store;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Api.Tests.MicroVms;

/// <summary>
/// Issue 15 (claim14): where the reconciler runs in the daemon's process and the store is SQLite, a Create is stored
/// claimed by it, with the status its first pass would write with the claim (Provisioning; Stopped for a VM created
/// Stopped). A Running Create then costs the store two writes, a Stopped one one. Without a reconciler in the process
/// (the API alone) a Create is the plain Pending record, as before.
/// </summary>
public sealed class CreateClaimTests
{
    private CancellationTokenSource _timeout = null!;

    [SetUp]
    public void SetUp() => _timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));

    [TearDown]
    public void TearDown() => _timeout.Dispose();

    private static CreateMicroVMRequest Request(string id, string state = "Running") => new()
    {
        Microvm = new MicroVMSpec { Id = id, Namespace = "demo", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" }, State = state },
    };

    private static Task<ApiTestServer> WithReconcilerAsync() =>
        ApiTestServer.StartAsync(services: s => s.AddReconciler(o => o.NodeName = "test-node"));

    /// <summary>The store's own events (one per durable write) for the VMs <paramref name="ids"/>, until <paramref name="last"/> says stop.</summary>
    private async Task<List<StoreEvent>> WritesAsync(IAsyncEnumerator<StoreEvent> watch, string[] ids, Func<StoreEvent, bool> last)
    {
        var events = new List<StoreEvent>();
        while (await watch.MoveNextAsync().AsTask().WaitAsync(_timeout.Token))
        {
            if (watch.Current.MicroVm is not { } vm || !ids.Contains(vm.Spec.Id))
            {
                continue;
            }

            events.Add(watch.Current);
            if (last(watch.Current))
            {
                return events;
            }
        }

        return events;
    }

    [Test]
    public async Task Create_ReconcilerInProcess_StoredClaimedProvisioning_ThenOneWriteToRunning()
    {
        await using var server = await WithReconcilerAsync();
        await using var watch = server.Store.Inner.WatchAsync(_timeout.Token).GetAsyncEnumerator(_timeout.Token);

        var reply = await server.Vms.CreateAsync(Request("web1"), cancellationToken: _timeout.Token);
        var writes = await WritesAsync(watch, ["web1"], e => e.MicroVm!.Status.Phase == Phase.Running);
        await server.Vms.CreateAsync(Request("zz-end", "Stopped"), cancellationToken: _timeout.Token); // a later write: nothing else came for web1 before it
        var after = await WritesAsync(watch, ["web1", "zz-end"], e => e.MicroVm!.Spec.Id == "zz-end");

        reply.Microvm.Status.Phase.Should().Be("Provisioning", "the first phase a caller sees where the reconciler runs");
        writes.Select(e => (e.Type, e.MicroVm!.Claimed, e.MicroVm.Status.Phase)).Should().Equal(
            [(StoreEventType.Added, true, Phase.Provisioning), (StoreEventType.Modified, true, Phase.Running)],
            "create + claim + Provisioning in one write, then Running: two writes");
        after.Should().ContainSingle("no third write for web1");
        writes[0].MicroVm!.Status.Node.Should().Be("test-node");
        writes[0].MicroVm!.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be("Provisioning");
    }

    [Test]
    public async Task Create_Stopped_ReconcilerInProcess_OneWrite_FirstPassWritesNothing()
    {
        await using var server = await WithReconcilerAsync();
        var host = server.Services.GetRequiredService<ReconcilerHost>();
        await using var watch = server.Store.Inner.WatchAsync(_timeout.Token).GetAsyncEnumerator(_timeout.Token);

        var reply = await server.Vms.CreateAsync(Request("off", "Stopped"), cancellationToken: _timeout.Token);
        while (host.Completed < 1)
        {
            await Task.Delay(10, _timeout.Token); // the first pass over it has run
        }

        await server.Vms.CreateAsync(Request("zz-end", "Stopped"), cancellationToken: _timeout.Token);
        var writes = await WritesAsync(watch, ["off", "zz-end"], e => e.MicroVm!.Spec.Id == "zz-end");

        reply.Microvm.Status.Phase.Should().Be("Stopped", "created Stopped: the Create's write is the claim and Stopped");
        writes.Where(e => e.MicroVm!.Spec.Id == "off").Select(e => (e.Type, e.MicroVm!.Claimed, e.MicroVm.Status.Phase)).Should().Equal(
            [(StoreEventType.Added, true, Phase.Stopped)], "one write; the first pass found nothing live and wrote nothing");
    }

    [Test]
    public async Task Create_NoReconcilerInProcess_PlainPendingRecord()
    {
        await using var server = await ApiTestServer.StartAsync();

        var reply = await server.Vms.CreateAsync(Request("web1"), cancellationToken: _timeout.Token);

        reply.Microvm.Status.Phase.Should().Be("Pending");
        var stored = (await server.Store.Inner.GetAsync(new VmKey("demo", "web1")))!;
        stored.Claimed.Should().BeFalse("no reconciler in this process claims it");
        stored.Status.Phase.Should().Be(Phase.Pending);
    }
}

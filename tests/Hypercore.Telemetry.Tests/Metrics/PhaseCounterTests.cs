using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Telemetry.Metrics;
using Hypercore.Core.Tests.Fakes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Telemetry.Tests.Metrics;

/// <summary>The phase gauge's source: counts follow the shared informer without listing the store per scrape.</summary>
public class PhaseCounterTests
{
    private static MicroVmSpec Spec(string id) => new() { Id = id, Kernel = new KernelSpec { Image = "/k" } };

    private static int Count(PhaseCounter counter, Phase phase) => counter.Snapshot().Single(c => c.Phase == phase).Count;

    private static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }
    }

    [Test]
    public async Task Snapshot_RecordsBeforeAndAfterStart_CountedByPhaseAndFollowed()
    {
        var store = new InMemoryStore();
        var a = await store.CreateAsync(Spec("a"));
        await store.UpdateStatusAsync(a.Key, a.Status with { Phase = Phase.Running }, a.ResourceVersion);
        using var informer = new MicroVmInformer(store, TimeProvider.System, Options.Create(new InformerOptions()), NullLogger<MicroVmInformer>.Instance);
        await informer.StartAsync(CancellationToken.None);
        using var counter = new PhaseCounter(informer);
        await counter.StartAsync(CancellationToken.None);
        await counter.Synced.WaitAsync(TimeSpan.FromSeconds(30));

        Count(counter, Phase.Running).Should().Be(1);
        counter.Snapshot().Should().HaveCount(Enum.GetValues<Phase>().Length, "every phase is reported, zero included");

        var b = await store.CreateAsync(Spec("b"));
        await Until(() => Count(counter, Phase.Pending) == 1);
        Count(counter, Phase.Pending).Should().Be(1);

        await store.UpdateStatusAsync(b.Key, b.Status with { Phase = Phase.Failed }, b.ResourceVersion);
        await store.RemoveAsync(a.Key);
        await Until(() => Count(counter, Phase.Running) == 0 && Count(counter, Phase.Failed) == 1);

        Count(counter, Phase.Running).Should().Be(0);
        Count(counter, Phase.Failed).Should().Be(1);
        Count(counter, Phase.Pending).Should().Be(0);
        await counter.StopAsync(CancellationToken.None);
        await informer.StopAsync(CancellationToken.None);
    }

    private static MicroVm Vm(string id, Phase phase, string uid = "u") => new()
    {
        Uid = $"{uid}-{id}",
        Spec = Spec(id),
        ResourceVersion = "1",
        Status = MicroVmStatus.Initial with { Phase = phase },
    };

    private static PhaseCounter Counter() => new(new MicroVmInformer(new InMemoryStore(), TimeProvider.System,
        Options.Create(new InformerOptions()), NullLogger<MicroVmInformer>.Instance));

    // Issue 15 (heap11): the counts move by each event's own records, the replaced one for Modified and the dropped
    // one for Deleted, a new incarnation under the same key included.
    [Test]
    public void OnEvent_AddedModifiedDeleted_MovesTheCountsOfTheRecordsItNames()
    {
        var counter = Counter();
        var a1 = Vm("a", Phase.Pending);
        var b1 = Vm("b", Phase.Pending);
        counter.OnEvent(new InformerEvent(InformerEventType.Added, a1, null));
        counter.OnEvent(new InformerEvent(InformerEventType.Added, b1, null));
        var a2 = a1 with { Status = a1.Status with { Phase = Phase.Provisioning } };
        var a3 = a2 with { Status = a2.Status with { Phase = Phase.Running } };
        counter.OnEvent(new InformerEvent(InformerEventType.Modified, a2, a1));
        counter.OnEvent(new InformerEvent(InformerEventType.Modified, a3, a2));
        var bAgain = Vm("b", Phase.Failed, uid: "second"); // another incarnation under b's key
        counter.OnEvent(new InformerEvent(InformerEventType.Modified, bAgain, b1));

        Count(counter, Phase.Pending).Should().Be(0);
        Count(counter, Phase.Provisioning).Should().Be(0);
        Count(counter, Phase.Running).Should().Be(1);
        Count(counter, Phase.Failed).Should().Be(1);

        counter.OnEvent(new InformerEvent(InformerEventType.Deleted, a3, a3));
        counter.OnEvent(new InformerEvent(InformerEventType.Deleted, bAgain, bAgain));
        counter.Snapshot().Sum(c => c.Count).Should().Be(0);
        counter.Snapshot().Should().HaveCount(Enum.GetValues<Phase>().Length);
    }

    // Issue 15 (heap11): nothing per record. Following 20,000 new records allocates nothing (it was a dictionary entry
    // per record: a large-object-heap array grown at every doubling, with a young key written into it at every Create).
    [Test]
    public void OnEvent_TwentyThousandRecordsAdded_AllocatesNothing()
    {
        var counter = Counter();
        var events = Enumerable.Range(0, 20_000)
            .Select(i => new InformerEvent(InformerEventType.Added, Vm($"vm-{i}", Phase.Running), null)).ToArray();
        counter.OnEvent(events[0]); // anything done once (the first call)

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 1; i < events.Length; i++)
        {
            counter.OnEvent(events[i]);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        allocated.Should().BeLessThan(1024, "the counts are one array; no record is kept");
        Count(counter, Phase.Running).Should().Be(20_000);
    }
}

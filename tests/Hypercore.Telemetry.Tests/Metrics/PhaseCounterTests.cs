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
}

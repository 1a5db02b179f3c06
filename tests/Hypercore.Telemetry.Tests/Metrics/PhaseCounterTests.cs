using Hypercore.MicroVms;
using Hypercore.Telemetry.Metrics;
using Hypercore.Core.Tests.Fakes;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypercore.Telemetry.Tests.Metrics;

/// <summary>The phase gauge's source: counts follow the store's watch without listing it per scrape.</summary>
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
        using var counter = new PhaseCounter(store, TimeProvider.System, NullLogger<PhaseCounter>.Instance);
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
    }

    [TestCase("5", "7", true)]
    [TestCase("7", "7", false)]
    [TestCase("8", "7", false)]
    [TestCase("abc", "7", false)]
    public void IsOlder_IntegerVersionsCompareNumerically_OpaqueOnesNever(string candidate, string known, bool older) =>
        PhaseCounter.IsOlder(candidate, known).Should().Be(older);
}

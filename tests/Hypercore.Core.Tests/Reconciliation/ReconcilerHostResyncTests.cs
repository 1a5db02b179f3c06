using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Reconciliation;

/// <summary>
/// Issue 15 (tidy5): the periodic resync spread over its interval (<see cref="ResyncRounds"/>) on a fake clock, with
/// the real informer, queue and reconciler: start-up queues everything at once, then each interval every record is
/// reconciled exactly once, a slice at a time.
/// </summary>
public class ReconcilerHostResyncTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Interval = TimeSpan.FromHours(1);
    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private FakeTimeProvider _time = null!;
    private MicroVmInformer? _informer;
    private ReconcilerHost? _host;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver();
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 12, 0, 0, TimeSpan.Zero));
    }

    [TearDown]
    public async Task TearDown()
    {
        if (_host is not null)
        {
            await _host.StopAsync(CancellationToken.None);
            _host.Dispose();
        }

        if (_informer is not null)
        {
            await _informer.StopAsync(CancellationToken.None);
            _informer.Dispose();
        }
    }

    private async Task<ReconcilerHost> StartHost()
    {
        var registry = new DriverRegistry([_driver], "fake");
        var options = Options.Create(new ReconcilerOptions
        {
            NodeName = "node-a", Workers = 8, BackoffBase = TimeSpan.FromSeconds(1), BackoffCap = TimeSpan.FromSeconds(60),
            PollInterval = TimeSpan.FromSeconds(2), ResyncInterval = Interval,
        });
        var reconciler = new Reconciler(_store, registry, _time, options, NullLogger<Reconciler>.Instance);
        _informer = new MicroVmInformer(_store, _time, Options.Create(new InformerOptions { ResyncInterval = TimeSpan.FromDays(1) }),
            NullLogger<MicroVmInformer>.Instance);
        await _informer.StartAsync(CancellationToken.None);
        _host = new ReconcilerHost(_informer, registry, reconciler, options, _time, NullLogger<ReconcilerHost>.Instance);
        await _host.StartAsync(CancellationToken.None);
        await _host.Ready.WaitAsync(Patience);
        return _host;
    }

    private async Task<List<MicroVm>> SeedStopped(int n)
    {
        var created = new List<MicroVm>();
        for (var i = 0; i < n; i++)
        {
            created.Add(await _store.CreateAsync(new MicroVmSpec { Id = $"vm-{i:D4}", Kernel = new KernelSpec { Image = "/k" }, State = DesiredState.Stopped }));
        }

        return created;
    }

    private Dictionary<string, int> Inspections() =>
        _driver.Calls.Where(c => c.StartsWith("inspect:", StringComparison.Ordinal)).GroupBy(c => c["inspect:".Length..]).ToDictionary(g => g.Key, g => g.Count());

    /// <summary>Waits until <paramref name="expected"/> reconciles have finished and nothing is queued.</summary>
    private static async Task Settle(ReconcilerHost host, long expected)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (host.Completed < expected || host.Queue.Depth > 0)
        {
            await Task.Delay(10, cts.Token);
        }

        host.Completed.Should().Be(expected);
    }

    [Test]
    public async Task Resync_ThousandRecords_EachReconciledOnceAnInterval_InQuarterSlices()
    {
        var vms = await SeedStopped(1000);
        var host = await StartHost();
        using (var cts = new CancellationTokenSource(Patience))
        {
            // Start-up: every record queued at once, claimed and found stopped.
            while ((await _store.ListAsync()).Any(v => v.Status.Phase != Phase.Stopped) || host.Queue.Depth > 0)
            {
                await Task.Delay(10, cts.Token);
            }
        }

        await Task.Delay(200); // the last reconciles' Done
        var completed = host.Completed;
        var before = Inspections();
        before.Keys.Should().HaveCount(1000);
        var slices = ResyncRounds.SlicesFor(1000, Interval);
        slices.Should().Be(4);

        _time.Advance(Interval - TimeSpan.FromSeconds(1));
        await Task.Delay(100);
        host.Completed.Should().Be(completed, "no resync before the first interval is over");

        // Round 1 begins one interval after start: a quarter of the records, then a quarter per quarter interval.
        _time.Advance(TimeSpan.FromSeconds(1));
        for (var slice = 1; slice <= slices; slice++)
        {
            await Settle(host, completed + (250 * slice));
            if (slice < slices)
            {
                _time.Advance(Interval / slices);
            }
        }

        var after = Inspections();
        after.Keys.Should().BeEquivalentTo(before.Keys);
        vms.Should().OnlyContain(v => after[v.Spec.Id] == before[v.Spec.Id] + 1, "every record reconciled once in the round");

        // Round 2 begins exactly one interval after round 1 did, and again gives every record out once.
        _time.Advance(Interval / slices);
        await Settle(host, completed + 1250);
        for (var slice = 2; slice <= slices; slice++)
        {
            _time.Advance(Interval / slices);
            await Settle(host, completed + 1000 + (250 * slice));
        }

        var round2 = Inspections();
        vms.Should().OnlyContain(v => round2[v.Spec.Id] == before[v.Spec.Id] + 2);
    }

    [Test]
    public async Task Resync_RecordDeletedDuringTheRound_NotQueuedByIt_NewRecordInTheNextRound()
    {
        await SeedStopped(600); // 3 slices
        var host = await StartHost();
        using (var cts = new CancellationTokenSource(Patience))
        {
            while ((await _store.ListAsync()).Any(v => v.Status.Phase != Phase.Stopped) || host.Queue.Depth > 0)
            {
                await Task.Delay(10, cts.Token);
            }
        }

        await Task.Delay(200);
        _time.Advance(Interval);
        var completed = host.Completed;
        await Settle(host, completed + 200);

        // The informer's order is the store's; the last slice holds 200 of the records not yet given out. Remove them
        // all (each removal is reconciled once, from its event), then the rest of the round queues only what is left.
        var last = Inspections().Where(kv => kv.Value == 1).Select(kv => kv.Key).ToList();
        last.Should().HaveCount(400);
        foreach (var id in last)
        {
            await _store.RemoveAsync(new VmKey("default", id));
        }

        await Settle(host, completed + 200 + 400);
        var added = await _store.CreateAsync(new MicroVmSpec { Id = "late", Kernel = new KernelSpec { Image = "/k" }, State = DesiredState.Stopped });
        await Settle(host, completed + 600 + 1);

        _time.Advance(Interval / 3);
        _time.Advance(Interval / 3);
        await Task.Delay(200);
        host.Completed.Should().Be(completed + 601, "the removed records are not queued by the round that listed them, the new one is not in it");
        Inspections()[added.Spec.Id].Should().Be(1);

        _time.Advance(Interval / 3); // round 2: what is cached now, the new record included
        await Settle(host, completed + 601 + 201);
        Inspections()[added.Spec.Id].Should().Be(2);
    }
}

using Hypercore.Core.Tests.Fakes;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Informers;

/// <summary>The one follower of the store: watch, list, re-list, dedupe, and fan-out to handlers and bounded streams.</summary>
public class MicroVmInformerTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private InMemoryStore _store = null!;
    private FakeTimeProvider _time = null!;
    private MicroVmInformer _informer = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero));
    }

    [TearDown]
    public async Task TearDown()
    {
        if (_informer is not null)
        {
            await _informer.StopAsync(CancellationToken.None);
            _informer.Dispose();
        }
    }

    private async Task StartAsync(TimeSpan? resync = null)
    {
        _informer = new MicroVmInformer(_store, _time, Options.Create(new InformerOptions { ResyncInterval = resync ?? TimeSpan.FromHours(1) }),
            NullLogger<MicroVmInformer>.Instance);
        await _informer.StartAsync(CancellationToken.None);
        await _informer.Synced.WaitAsync(Patience);
    }

    private static MicroVmSpec Spec(string id) => new() { Id = id, Kernel = new KernelSpec { Image = "/k" } };

    private static async Task Until(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (!condition())
        {
            await Task.Delay(10, cts.Token);
        }
    }

    [Test]
    public async Task Handler_GetsTheCacheAsAdded_ThenChangesWithThePreviousVersion()
    {
        var a = await _store.CreateAsync(Spec("a"));
        await StartAsync();
        var seen = new List<InformerEvent>();
        using var handler = _informer.AddHandler(ev => { lock (seen) { seen.Add(ev); } });

        var b = await _store.CreateAsync(Spec("b"));
        var a2 = await _store.UpdateStatusAsync(a.Key, a.Status with { Phase = Phase.Running }, a.ResourceVersion);
        await _store.RemoveAsync(b.Key);
        await Until(() => { lock (seen) { return seen.Count == 4; } });

        seen.Select(e => (e.Type, e.MicroVm.Spec.Id)).Should().Equal(
            (InformerEventType.Added, "a"), (InformerEventType.Added, "b"), (InformerEventType.Modified, "a"), (InformerEventType.Deleted, "b"));
        seen[2].Previous!.ResourceVersion.Should().Be(a.ResourceVersion);
        seen[2].MicroVm.ResourceVersion.Should().Be(a2.ResourceVersion);
        _informer.List().Select(v => v.Spec.Id).Should().Equal("a");
    }

    [Test]
    public async Task Released_RunsAfterEachChangesHandlerCalls_WithTheLockReleased()
    {
        var a = await _store.CreateAsync(Spec("a"));
        await StartAsync();
        var log = new List<string>();
        var lockFree = new List<bool>();
        using var handler = _informer.AddHandler(
            ev => { lock (log) { log.Add($"{ev.Type} {ev.MicroVm.Spec.Id}"); } },
            () =>
            {
                // Another thread can take the informer's lock (a cache read) while this runs: it is not held here.
                var read = Task.Run(() => _informer.Get(a.Key)).Wait(Patience);
                lock (log)
                {
                    log.Add("released");
                    lockFree.Add(read);
                }
            });

        await _store.CreateAsync(Spec("b"));
        await _store.UpdateStatusAsync(a.Key, a.Status with { Phase = Phase.Running }, a.ResourceVersion);
        await Until(() => { lock (log) { return log.Count == 6; } });

        log.Should().Equal("Added a", "released", "Added b", "released", "Modified a", "released");
        lockFree.Should().AllSatisfy(free => free.Should().BeTrue());
    }

    [Test]
    public async Task ListFailure_EndsItsStoreWatch_BeforeFollowingAgain()
    {
        // The list fails while the watch's first MoveNext is waiting. Disposing an async iterator in that state throws
        // NotSupportedException and never runs its finally: the watch leaked (one per failed list) and the log showed
        // "Specified method is not supported." instead of the store's error.
        _store.FailLists = 1;
        _informer = new MicroVmInformer(_store, _time, Options.Create(new InformerOptions { ResyncInterval = TimeSpan.FromHours(1) }),
            NullLogger<MicroVmInformer>.Instance);
        await _informer.StartAsync(CancellationToken.None);
        await Until(() =>
        {
            _time.Advance(TimeSpan.FromMilliseconds(100)); // the retry delay runs on the fake clock
            return _informer.Synced.IsCompleted;
        });

        _store.WatchesOpened.Should().Be(2, "the failed list's watch and the retry's");
        _store.ActiveWatches.Should().Be(1, "the failed attempt's watch was ended before the retry");
    }

    [Test]
    public async Task StaleAndDuplicateEvents_AreDropped()
    {
        var a = await _store.CreateAsync(Spec("a"));
        var a2 = await _store.UpdateStatusAsync(a.Key, a.Status with { Phase = Phase.Running }, a.ResourceVersion);
        await StartAsync();
        var seen = new List<InformerEvent>();
        using var handler = _informer.AddHandler(ev => { lock (seen) { seen.Add(ev); } });

        _store.Inject(new StoreEvent(StoreEventType.Modified, a)); // older than the cache: queued before the list
        _store.Inject(new StoreEvent(StoreEventType.Modified, a2)); // the same version again
        _store.Inject(new StoreEvent(StoreEventType.Deleted, a)); // a delete older than what is cached
        var marker = await _store.CreateAsync(Spec("marker"));
        await Until(() => { lock (seen) { return seen.Any(e => e.MicroVm.Key == marker.Key); } });

        seen.Select(e => (e.Type, e.MicroVm.Spec.Id)).Should().Equal((InformerEventType.Added, "a"), (InformerEventType.Added, "marker"));
        _informer.Get(a.Key)!.Status.Phase.Should().Be(Phase.Running);
    }

    [Test]
    public async Task StoreResync_ListsAgain_AndReportsWhatWasMissed()
    {
        var a = await _store.CreateAsync(Spec("a"));
        await StartAsync();
        var seen = new List<InformerEvent>();
        using var handler = _informer.AddHandler(ev => { lock (seen) { seen.Add(ev); } });

        _store.RemoveSilently(a.Key);
        _store.Inject(new StoreEvent(StoreEventType.Resync, null));

        await Until(() => { lock (seen) { return seen.Count == 2; } });
        seen[1].Type.Should().Be(InformerEventType.Deleted);
        seen[1].MicroVm.Key.Should().Be(a.Key);
        _informer.List().Should().BeEmpty();
    }

    [Test]
    public async Task EveryResyncInterval_TheStoreIsListedAgain()
    {
        var a = await _store.CreateAsync(Spec("a"));
        await StartAsync(resync: TimeSpan.FromMinutes(5));
        _store.RemoveSilently(a.Key);
        var relists = _informer.Relists;

        _time.Advance(TimeSpan.FromMinutes(5));

        await Until(() => _informer.Relists > relists && _informer.List().Count == 0);
        _informer.Get(a.Key).Should().BeNull();
    }

    [Test]
    public async Task ManySubscribers_ShareOneStoreWatch()
    {
        await StartAsync();
        var subscriptions = Enumerable.Range(0, 20).Select(_ => _informer.Subscribe(100)).ToList();

        var a = await _store.CreateAsync(Spec("a"));

        foreach (var subscription in subscriptions)
        {
            var ev = await subscription.Events.ReadAsync().AsTask().WaitAsync(Patience);
            ev.MicroVm.Key.Should().Be(a.Key);
            subscription.Dispose();
        }

        _store.WatchesOpened.Should().Be(1, "20 watchers subscribe to the informer, not to the store");
    }

    [Test]
    public async Task Subscribe_SnapshotThenChanges_FilterTurnsLeavingIntoDeleted()
    {
        var a = await _store.CreateAsync(Spec("a"));
        await _store.CreateAsync(Spec("b"));
        await StartAsync();

        using var subscription = _informer.Subscribe(100, vm => vm.Spec.Id == "a" && !vm.IsDeleting);
        subscription.Snapshot.Select(v => v.Spec.Id).Should().Equal("a");
        await _store.MarkForDeletionAsync(a.Key);

        var ev = await subscription.Events.ReadAsync().AsTask().WaitAsync(Patience);
        ev.Type.Should().Be(InformerEventType.Deleted, "the record no longer matches this stream's filter");
    }

    [Test]
    public async Task SlowSubscriber_IsEndedWithOverflow_WhileOthersAndHandlersKeepUp()
    {
        await StartAsync();
        var handled = 0;
        using var handler = _informer.AddHandler(_ => Interlocked.Increment(ref handled));
        using var slow = _informer.Subscribe(capacity: 5);
        using var fast = _informer.Subscribe(capacity: 100);
        var fastSeen = 0;
        var reader = Task.Run(async () =>
        {
            await foreach (var _ in fast.Events.ReadAllAsync())
            {
                if (Interlocked.Increment(ref fastSeen) == 20)
                {
                    return;
                }
            }
        });

        for (var i = 0; i < 20; i++)
        {
            await _store.CreateAsync(Spec($"vm-{i}"));
        }

        await reader.WaitAsync(Patience);
        await Until(() => Volatile.Read(ref handled) == 20);
        var drained = 0;
        var read = async () =>
        {
            await foreach (var _ in slow.Events.ReadAllAsync())
            {
                drained++;
            }
        };

        await read.Should().ThrowAsync<InformerOverflowException>().WithMessage("*fell more than 5 events behind*");
        drained.Should().Be(5, "what fitted in the buffer is still delivered before the stream ends");
    }

    [TestCase("5", "7", true)]
    [TestCase("7", "7", false)]
    [TestCase("8", "7", false)]
    [TestCase("abc", "7", false)]
    public void IsOlder_IntegerVersionsCompareNumerically_OpaqueOnesNever(string candidate, string known, bool older) =>
        MicroVmInformer.IsOlder(candidate, known).Should().Be(older);
}

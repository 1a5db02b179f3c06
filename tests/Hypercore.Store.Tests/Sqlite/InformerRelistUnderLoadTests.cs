using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Store.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// Issue 15, s35: writes that arrive while the informer lists must not overflow the store's watch buffer. Before, the
/// informer read nothing from its watch during a list, so once one list's time held more writes than the buffer (1,024
/// events on SQLite: ~60,000 records and ~20,000 writes/s), the store dropped the backlog and sent Resync, whose relist
/// overflowed it again: a relist per list time for as long as the writes went on. Here the store's buffer is 8 events
/// and a list is held open (after its snapshot) while 40 records are written.
/// </summary>
[TestFixture]
public sealed class InformerRelistUnderLoadTests : TempDatabaseTest
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private const int Written = 40;
    private readonly List<MicroVmInformer> _informers = [];

    [TearDown]
    public async Task StopInformersAsync()
    {
        foreach (var informer in _informers)
        {
            await informer.StopAsync(CancellationToken.None);
            informer.Dispose();
        }

        _informers.Clear();
    }

    private static MicroVmSpec Spec(string id) => new() { Id = id, Kernel = new KernelSpec { Image = "/images/vmlinuz" } };

    [TestCase(true, TestName = "RelistWithWritesArriving_WatchDoesNotOverflow_OneRelist_EveryWriteSeen(listing of versions)")]
    [TestCase(false, TestName = "RelistWithWritesArriving_WatchDoesNotOverflow_OneRelist_EveryWriteSeen(full list)")]
    public async Task RelistWithWritesArriving_WatchDoesNotOverflow_OneRelist_EveryWriteSeen(bool withListing)
    {
        var sqlite = Open(configure: o => o.WatchBufferSize = 8);
        var store = new GatedStore(sqlite);
        var informer = await StartAsync(store, withListing);
        for (var i = 0; i < 5; i++)
        {
            await sqlite.CreateAsync(Spec($"before-{i}"));
        }

        await WaitForAsync(() => informer.Count == 5);
        using var added = new AddedIds(informer);

        var relists = informer.Relists;
        var listed = store.HoldNextList();
        informer.RequestRelist();
        await listed.WaitAsync(Patience); // the list has its snapshot (the 5 records) and is held open
        for (var i = 0; i < Written; i++)
        {
            await sqlite.CreateAsync(Spec($"during-{i:D2}")); // 5 × the store's buffer, one commit each
        }

        store.ReleaseList();
        await WaitForAsync(() => informer.Count == 5 + Written);
        await store.WaitIdleAsync(); // a second list, had one started, has returned by the time it is counted

        informer.Relists.Should().Be(relists + 1, "the writes during the list were read from the watch, not lost to an overflow and listed again");
        store.Lists.Should().Be(1, "one list since the hold: no Resync, no second relist");
        added.Seen().Should().Equal(Enumerable.Range(0, Written).Select(i => $"during-{i:D2}"), "each write seen once, in commit order");

        // And the informer follows the watch as before afterwards.
        await sqlite.CreateAsync(Spec("after"));
        await WaitForAsync(() => informer.Get(new VmKey("default", "after")) is not null);
    }

    [Test]
    public async Task ResyncWhileListing_ListsOnceMore_AndEndsWithEveryRecord()
    {
        var sqlite = Open(configure: o => o.WatchBufferSize = 8);
        var store = new GatedStore(sqlite);
        var informer = await StartAsync(store, withListing: true);
        await sqlite.CreateAsync(Spec("before"));
        await WaitForAsync(() => informer.Count == 1);

        var relists = informer.Relists;
        var listed = store.HoldNextList();
        informer.RequestRelist();
        await listed.WaitAsync(Patience);
        await sqlite.CreateAsync(Spec("a"));
        store.InjectResync(); // events lost here: what the held list's snapshot does not have must come from another list
        await sqlite.CreateAsync(Spec("b"));
        store.ReleaseList();

        await WaitForAsync(() => informer.Relists == relists + 2);
        await WaitForAsync(() => informer.Count == 3);
        store.Lists.Should().Be(2, "the Resync seen during the first list asked for a second one");
        informer.Get(new VmKey("default", "a")).Should().NotBeNull();
        informer.Get(new VmKey("default", "b")).Should().NotBeNull();
    }

    [Test]
    public async Task MoreEventsThanItHoldsWhileListing_ListsOnceMore_EachRecordAddedOnce()
    {
        var sqlite = Open(configure: o => o.WatchBufferSize = 8);
        var store = new GatedStore(sqlite);
        var informer = await StartAsync(store, withListing: true, maxHeld: 4);
        await sqlite.CreateAsync(Spec("before"));
        await WaitForAsync(() => informer.Count == 1);
        using var added = new AddedIds(informer);

        var relists = informer.Relists;
        var listed = store.HoldNextList();
        informer.RequestRelist();
        await listed.WaitAsync(Patience);
        for (var i = 0; i < 10; i++)
        {
            await sqlite.CreateAsync(Spec($"during-{i}")); // more than the 4 events the informer holds, fewer than the store's 8 at a time
        }

        store.ReleaseList();
        await WaitForAsync(() => informer.Count == 11);
        await store.WaitIdleAsync();

        informer.Relists.Should().Be(relists + 2, "the held events past the limit were dropped, so the store was listed again");
        store.Lists.Should().Be(2);
        added.Seen().Should().BeEquivalentTo(Enumerable.Range(0, 10).Select(i => $"during-{i}"), "each new record Added once, by the second list or a held event");
    }

    private async Task<MicroVmInformer> StartAsync(GatedStore store, bool withListing, int maxHeld = 65_536)
    {
        var options = new InformerOptions { ResyncInterval = TimeSpan.FromHours(1), MaxEventsHeldDuringRelist = maxHeld };
        var informer = new MicroVmInformer(store, TimeProvider.System, Options.Create(options),
            NullLogger<MicroVmInformer>.Instance, withListing ? store : null);
        _informers.Add(informer);
        await informer.StartAsync(CancellationToken.None);
        await informer.Synced.WaitAsync(Patience);
        store.CountListsFromNow();
        return informer;
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (!condition())
        {
            await Task.Delay(5, cts.Token);
        }
    }

    /// <summary>The ids of the Added events from now on (not the cache's replay when the handler is added).</summary>
    private sealed class AddedIds : IDisposable
    {
        private readonly List<string> _ids = [];
        private readonly IDisposable _handler;

        public AddedIds(MicroVmInformer informer)
        {
            _handler = informer.AddHandler(ev =>
            {
                if (ev.Type == InformerEventType.Added)
                {
                    lock (_ids)
                    {
                        _ids.Add(ev.MicroVm.Spec.Id);
                    }
                }
            });
            lock (_ids)
            {
                _ids.Clear(); // the cache replayed as Added
            }
        }

        public string[] Seen()
        {
            lock (_ids)
            {
                return [.. _ids];
            }
        }

        public void Dispose() => _handler.Dispose();
    }

    /// <summary>
    /// The SQLite store, with a list that can be held open after it has read its snapshot, a count of lists, and a
    /// watch into which a Resync can be put (as the store puts one after an overflow).
    /// </summary>
    private sealed class GatedStore(SqliteMicroVmStore inner) : DelegatingStore(inner), IVersionListing
    {
        private readonly Channel<StoreEvent> _injected = Channel.CreateUnbounded<StoreEvent>();
        private TaskCompletionSource? _listed;
        private TaskCompletionSource? _release;
        private int _lists;
        private int _running;
        private bool _counting;

        public int Lists => Volatile.Read(ref _lists);

        public void CountListsFromNow() => Volatile.Write(ref _counting, true);

        /// <summary>The next list reads its snapshot, completes the returned task and waits for <see cref="ReleaseList"/>.</summary>
        public Task HoldNextList()
        {
            _release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var listed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _listed, listed);
            return listed.Task;
        }

        public void ReleaseList() => _release!.TrySetResult();

        public void InjectResync() => _injected.Writer.TryWrite(new StoreEvent(StoreEventType.Resync, null));

        public async Task WaitIdleAsync()
        {
            await Task.Delay(200); // time for a relist to have begun, had the informer been told to do one
            using var cts = new CancellationTokenSource(Patience);
            while (Volatile.Read(ref _running) > 0)
            {
                await Task.Delay(5, cts.Token);
            }
        }

        public override Task<IReadOnlyList<MicroVm>> ListAsync(string? @namespace = null, CancellationToken cancellationToken = default) =>
            Held(() => base.ListAsync(@namespace, cancellationToken));

        public Task<IReadOnlyList<MicroVm>> ListWantedAsync(Func<ListedVersion, bool> wanted, CancellationToken cancellationToken = default) =>
            Held(() => inner.ListWantedAsync(wanted, cancellationToken));

        private async Task<IReadOnlyList<MicroVm>> Held(Func<Task<IReadOnlyList<MicroVm>>> list)
        {
            Interlocked.Increment(ref _running);
            try
            {
                if (Volatile.Read(ref _counting))
                {
                    Interlocked.Increment(ref _lists);
                }

                var read = await list();
                if (Interlocked.Exchange(ref _listed, null) is { } listed)
                {
                    // Held on the calling thread, as the SQLite store's list does its reads before it returns a task.
                    listed.TrySetResult();
                    _release!.Task.Wait(Patience).Should().BeTrue("the test releases the list");
                }

                return read;
            }
            finally
            {
                Interlocked.Decrement(ref _running);
            }
        }

        public override async IAsyncEnumerable<StoreEvent> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            // The store's events and the injected ones, in the order they come, handed over one at a time: a reader that
            // stops reading leaves the store's events in the store's own buffer, as with the store's watch itself.
            var merged = Channel.CreateBounded<StoreEvent>(1);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var store = base.WatchAsync(stop.Token).GetAsyncEnumerator(stop.Token);
            var first = store.MoveNextAsync(); // subscribes now, before the informer lists (as the store's own watch does)
            var pumps = Task.WhenAll(
                Task.Run(async () =>
                {
                    await using (store)
                    {
                        for (var more = await first; more; more = await store.MoveNextAsync())
                        {
                            await merged.Writer.WriteAsync(store.Current, stop.Token);
                        }
                    }
                }),
                Task.Run(async () =>
                {
                    await foreach (var ev in _injected.Reader.ReadAllAsync(stop.Token))
                    {
                        await merged.Writer.WriteAsync(ev, stop.Token);
                    }
                }));
            try
            {
                await foreach (var ev in merged.Reader.ReadAllAsync(cancellationToken))
                {
                    yield return ev;
                }
            }
            finally
            {
                await stop.CancelAsync();
                await pumps.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }
}

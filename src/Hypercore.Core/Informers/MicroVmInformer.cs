using System.Globalization;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Hypercore.MicroVms;
using Hypercore.Store;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Hypercore.Composition;

namespace Hypercore.Informers;

public enum InformerEventType
{
    Added,
    Modified,
    Deleted,
}

/// <summary>One change to the cache. <see cref="Previous"/> is the cached record before it (null for Added).</summary>
public sealed record InformerEvent(InformerEventType Type, MicroVm MicroVm, MicroVm? Previous);

/// <summary>Informer settings (section "Informer").</summary>
public sealed class InformerOptions
{
    public const string Section = "Informer";

    /// <summary>
    /// How often the whole store is listed again and compared with the cache, whatever the watch said (the node setting
    /// <c>relist-interval</c>). Default 5 minutes.
    /// </summary>
    public TimeSpan ResyncInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>First delay before following the store again after the watch or list failed; doubles up to 30 s. Default 500 ms.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Most watch events held while a list runs; past it they are dropped and the store is listed once more, as after the
    /// store's Resync (issue 15, s35). A relist of 100,000 SQLite records takes ~0.3-0.5 s, in which this host's store
    /// commits ~10,000 events at its fastest. Not a setting: internal for tests.
    /// </summary>
    internal int MaxEventsHeldDuringRelist { get; set; } = 65_536;
}

/// <summary>
/// The one follower of the store, like a controller-runtime shared informer: it watches, lists (after subscribing, so
/// nothing in between is lost), lists again on the store's Resync and every <see cref="InformerOptions.ResyncInterval"/>,
/// drops events older than what it already has, and keeps the result as a cache. Everything else that follows the
/// store (the reconciler, the API's Watch streams, the phase metrics) reads this cache and its events, so the store
/// has one watch however many clients watch.
/// </summary>
/// <remarks>
/// Handlers (<see cref="AddHandler"/>) run on the informer's loop, in order, and must not block: they are for the
/// daemon's own consumers. Streams for clients (<see cref="Subscribe"/>) get a bounded buffer; one that falls further
/// behind is ended (<see cref="InformerOverflowException"/>) rather than slowing anyone else.
/// </remarks>
public sealed partial class MicroVmInformer : BackgroundService, IMicroVmCache
{
    private readonly IMicroVmStore _store;
    private readonly IVersionListing? _versions;
    private readonly TimeProvider _time;
    private readonly InformerOptions _options;
    private readonly ILogger<MicroVmInformer> _log;
    private readonly object _gate = new();
    private readonly Dictionary<VmKey, MicroVm> _cache = new(CacheKeyComparer.Instance); // its relist looks keys up by a listing's characters
    private readonly List<Action<InformerEvent>> _handlers = [];
    private readonly List<InformerSubscription> _subscriptions = [];
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Channel<bool> _relistRequests = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    /// <param name="versions">
    /// The same store's listing of versions, when it has one (SQLite): a relist then reads in full only the records that
    /// are new or changed (issue 15). Without it every relist reads and parses every record.
    /// </param>
    public MicroVmInformer(IMicroVmStore store, TimeProvider time, IOptions<InformerOptions> options, ILogger<MicroVmInformer> log,
        IVersionListing? versions = null)
    {
        _store = store;
        _versions = versions;
        _time = time;
        _options = options.Value;
        _log = log;
    }

    /// <summary>Completes after the first list has filled the cache.</summary>
    public Task Synced => _synced.Task;

    /// <summary>Number of lists done (start, store Resyncs, periodic relists, recoveries); for tests and benchmarks.</summary>
    public long Relists => Interlocked.Read(ref _relists);

    private long _relists;

    /// <summary>Records the relists read in full (all of them without a listing of versions; the new and changed ones with it); for tests and benchmarks.</summary>
    public long RelistReads => Interlocked.Read(ref _relistReads);

    private long _relistReads;

    /// <summary>The cached records, ordered by namespace then id.</summary>
    public IReadOnlyList<MicroVm> List()
    {
        lock (_gate)
        {
            return Ordered(_cache.Values);
        }
    }

    /// <summary>The cached records in no particular order: a copy of the references, without the sort of <see cref="List"/>.</summary>
    public MicroVm[] Unordered()
    {
        lock (_gate)
        {
            return [.. _cache.Values];
        }
    }

    /// <summary>Number of cached records (issue 15: the reconciler spreads its polls by it).</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _cache.Count;
            }
        }
    }

    public MicroVm? Get(VmKey key)
    {
        lock (_gate)
        {
            return _cache.GetValueOrDefault(key);
        }
    }

    /// <summary>
    /// Calls <paramref name="handler"/> with every cached record as Added, then with every change, in order, on the
    /// informer's loop. The handler must return quickly and never throw. Dispose the result to stop.
    /// </summary>
    /// <param name="released">
    /// Called, when given, each time the informer has told handlers of one change (or of one list) and released its lock:
    /// on the informer's loop, after the handler's calls for that change, and once after the calls above on the caller's
    /// thread. It may do what a handler must not do under the lock (issue 15, thirteenth pass: the reconciler hands the
    /// keys its handler queued to its workers there). Like the handler, it must never throw.
    /// </param>
    public IDisposable AddHandler(Action<InformerEvent> handler, Action? released = null)
    {
        lock (_gate)
        {
            foreach (var vm in Ordered(_cache.Values))
            {
                handler(new InformerEvent(InformerEventType.Added, vm, null));
            }

            _handlers.Add(handler);
            if (released is not null)
            {
                _released = [.. _released, released];
            }
        }

        released?.Invoke();
        return new Unregister(() =>
        {
            lock (_gate)
            {
                _handlers.Remove(handler);
                if (released is not null)
                {
                    _released = [.. _released.Where(r => r != released)];
                }
            }
        });
    }

    // The handlers' released callbacks; replaced (never changed in place) under the lock, read without it.
    private volatile Action[] _released = [];

    /// <summary>Runs the released callbacks (<see cref="AddHandler"/>). Never under the lock.</summary>
    private void Released()
    {
        foreach (var released in _released)
        {
            try
            {
                released();
            }
            catch (Exception ex)
            {
                LogReleasedFailed(ex.Message, ex);
            }
        }
    }

    /// <summary>
    /// A stream of the records <paramref name="filter"/> accepts: the cached ones as of now (<see cref="InformerSubscription.Snapshot"/>),
    /// then every change after it. At most <paramref name="capacity"/> events wait unread; one more ends the stream with
    /// <see cref="InformerOverflowException"/>.
    /// </summary>
    public InformerSubscription Subscribe(int capacity, Func<MicroVm, bool>? filter = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        lock (_gate)
        {
            var matches = filter ?? (_ => true);
            var subscription = new InformerSubscription(this, Ordered(_cache.Values.Where(matches)), matches, capacity);
            _subscriptions.Add(subscription);
            return subscription;
        }
    }

    /// <summary>Asks for a relist now (as after a store Resync); returns at once.</summary>
    public void RequestRelist() => _relistRequests.Writer.TryWrite(true);

    internal void Remove(InformerSubscription subscription)
    {
        lock (_gate)
        {
            _subscriptions.Remove(subscription);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var resync = _time.CreateTimer(_ => RequestRelist(), null, _options.ResyncInterval, _options.ResyncInterval);
        var delay = _options.RetryDelay;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await FollowAsync(stoppingToken);
                    delay = _options.RetryDelay;
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex)
                {
                    LogFollowFailed(_store.Name, ex.Message);
                    await Task.Delay(delay, _time, stoppingToken);
                    delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            lock (_gate)
            {
                foreach (var subscription in _subscriptions)
                {
                    subscription.Complete(null);
                }

                _subscriptions.Clear();
            }
        }
    }

    /// <summary>Watch first, then list, then apply events; a list is done again whenever asked for. Returns when the watch ends.</summary>
    private async Task FollowAsync(CancellationToken ct)
    {
        using var watchCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var watch = _store.WatchAsync(watchCts.Token).GetAsyncEnumerator(watchCts.Token);
        var move = watch.MoveNextAsync().AsTask(); // subscribes before the list below
        try
        {
            move = await RelistFollowingAsync(watch, move, ct);
            var relist = _relistRequests.Reader.WaitToReadAsync(ct).AsTask();
            while (true)
            {
                // An event already waiting is taken at once, as WhenAny would (it returns the first of its arguments that is
                // complete); only a wait needs the combined task (issue 15, twelfth pass: WhenAny's result task for every
                // event, ~3 per Running Create, most of them already buffered when the loop comes back for them).
                var done = move.IsCompleted ? move : await Task.WhenAny(move, relist);
                if (done == relist)
                {
                    await relist;
                    _relistRequests.Reader.TryRead(out _);
                    move = await RelistFollowingAsync(watch, move, ct);
                    relist = _relistRequests.Reader.WaitToReadAsync(ct).AsTask();
                    continue;
                }

                if (!await move)
                {
                    return; // the store ended the watch: follow again (watch, list)
                }

                var ev = watch.Current;
                move = watch.MoveNextAsync().AsTask();
                if (ev.Type == StoreEventType.Resync)
                {
                    move = await RelistFollowingAsync(watch, move, ct);
                }
                else if (ev.MicroVm is { } vm)
                {
                    Apply(ev.Type, vm);
                    Released();
                }
            }
        }
        finally
        {
            // An enumerator may not be disposed while a MoveNextAsync is waiting: a compiler-generated async iterator
            // (the Kubernetes store's watch, the authorizing wrapper) then throws NotSupportedException, which hid the
            // real error (a failed list, the shutdown) and left that watch open for good. End the wait first.
            await watchCts.CancelAsync();
            await ((Task)move).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await watch.DisposeAsync();
        }
    }

    /// <summary>
    /// Lists the store (<see cref="RelistAsync"/>) while it keeps reading the watch, holding what arrives, then applies
    /// what it held in order (what the list already showed is dropped by <see cref="Apply"/> as not newer). Returns the
    /// watch's next pending move (completed with false if the watch ended meanwhile).
    /// </summary>
    /// <remarks>
    /// Issue 15, s35: the store's watch buffer (1,024 events on SQLite) used to fill while a list ran, once the writes
    /// in one list's time outnumbered it (at ~60,000 records and ~20,000 writes/s, one relist of 0.4 s); the store then
    /// dropped the backlog and sent Resync, whose relist overflowed it again, so a single relist under a steady write
    /// load became a relist per ~0.4 s for as long as the load lasted, each O(records). Held here, a list's events cost
    /// memory for as long as the list takes, bounded by <see cref="InformerOptions.MaxEventsHeldDuringRelist"/>.
    /// </remarks>
    private async Task<Task<bool>> RelistFollowingAsync(IAsyncEnumerator<StoreEvent> watch, Task<bool> move, CancellationToken ct)
    {
        var held = new List<StoreEvent>();
        while (true)
        {
            var again = false;
            // On a pool thread: a store's list may do all its work before its first await (SQLite reads on the calling
            // thread), and the watch must be read meanwhile. Only this method's caller writes the cache, and it is here.
            var listing = Task.Run(() => RelistAsync(ct), ct);
            while (!listing.IsCompleted)
            {
                var done = move.IsCompleted ? move : await Task.WhenAny(move, listing);
                if (done != move || Ended(move))
                {
                    break; // listed, or the watch ended or failed (the caller awaits the completed move, as it would have)
                }

                var ev = watch.Current;
                move = watch.MoveNextAsync().AsTask();
                // Events lost before a Resync, or held past the limit, are covered by one more list after this one.
                if (ev.Type == StoreEventType.Resync || held.Count >= _options.MaxEventsHeldDuringRelist)
                {
                    again = true;
                    held.Clear();
                }

                if (ev.Type != StoreEventType.Resync)
                {
                    held.Add(ev);
                }
            }

            await listing;
            if (!again || Ended(move))
            {
                break;
            }
        }

        foreach (var ev in held)
        {
            if (ev.MicroVm is { } vm)
            {
                Apply(ev.Type, vm);
                Released();
            }
        }

        return move;
    }

    private static bool Ended(Task<bool> move) => move.IsCompleted && !(move.IsCompletedSuccessfully && move.Result);

    /// <summary>
    /// Lists the store and makes the cache equal to it: Added for a key not cached, Modified for one whose uid or resource
    /// version differs, Deleted for a cached key not listed. A record at the cached uid and version is the cached record
    /// (versions identify writes: every write of the store's, and of anyone who edits its rows, takes a new one), so it
    /// is left as it is, and with a listing of versions (<see cref="IVersionListing"/>) it is not even read.
    /// </summary>
    private async Task RelistAsync(CancellationToken ct)
    {
        IReadOnlyList<MicroVm> read;
        HashSet<VmKey>? listed = null;
        var missing = false;
        // With nothing cached every record is new: one full list reads them all faster than the listing and a read of
        // each (issue 15: 1.2 s against 1.8 s of CPU for 100,000 records), so the start's list stays what it was.
        var versions = _cache.Count > 0 ? _versions : null;
        if (versions is not null)
        {
            // Only this loop writes the cache (Publish, from here and from Apply), and it is waiting here: the cache can be
            // read without the lock while the store lists. Rows are looked up by their characters: no key or string is
            // made for a row (seventh pass; nor a set of every listed key: a count tells whether any cached key is gone).
            var cached = _cache.GetAlternateLookup<ListedVersion>();
            var found = 0;
            read = await versions.ListWantedAsync(v =>
            {
                if (!cached.TryGetValue(v, out var known))
                {
                    return true;
                }

                found++;
                return Differs(known, v.Uid, v.ResourceVersion);
            }, ct);
            missing = found < _cache.Count;
        }
        else
        {
            read = await _store.ListAsync(null, ct);
            listed = new HashSet<VmKey>(read.Count);
            foreach (var vm in read)
            {
                listed.Add(vm.Key);
            }
        }

        lock (_gate)
        {
            foreach (var vm in read)
            {
                var known = _cache.GetValueOrDefault(vm.Key);
                if (known is null)
                {
                    Publish(new InformerEvent(InformerEventType.Added, vm, null));
                }
                else if (Differs(known, vm.Uid, vm.ResourceVersion))
                {
                    Publish(new InformerEvent(InformerEventType.Modified, vm, known));
                }
            }

            if (listed is not null)
            {
                PublishDeleted(listed);
            }
        }

        Released();

        if (missing)
        {
            // A cached key was not listed: a record deleted where the watch did not see it (a lost event, another process).
            // Which ones, a second listing of the cached keys says; it reads no record. Rare, so the usual relist keeps no
            // set of 100,000 keys. Its snapshot is a later one: a key it does not list is gone now, whatever the first said.
            var cached = _cache.GetAlternateLookup<ListedVersion>();
            var present = new HashSet<VmKey>(_cache.Count);
            await versions!.ListWantedAsync(v =>
            {
                if (cached.TryGetValue(v, out var key, out _))
                {
                    present.Add(key);
                }

                return false;
            }, ct);
            lock (_gate)
            {
                PublishDeleted(present);
            }

            Released();
        }

        // After the events, so that a caller who sees the count grow sees what the relist changed.
        Interlocked.Add(ref _relistReads, read.Count);
        Interlocked.Increment(ref _relists);
        _synced.TrySetResult();
    }

    /// <summary>Deleted for every cached record whose key is not in <paramref name="listed"/>, all of whose keys are cached. Under the lock.</summary>
    private void PublishDeleted(HashSet<VmKey> listed)
    {
        if (_cache.Count > listed.Count)
        {
            foreach (var gone in _cache.Values.Where(v => !listed.Contains(v.Key)).ToList())
            {
                Publish(new InformerEvent(InformerEventType.Deleted, gone, gone));
            }
        }
    }

    private static bool Differs(MicroVm known, ReadOnlySpan<char> uid, ReadOnlySpan<char> resourceVersion) =>
        !resourceVersion.SequenceEqual(known.ResourceVersion) || !uid.SequenceEqual(known.Uid);

    private void Apply(StoreEventType type, MicroVm vm)
    {
        lock (_gate)
        {
            if (type == StoreEventType.Deleted)
            {
                // A delete of an older incarnation (another uid) or of a version older than the cache's is stale.
                var cached = _cache.GetValueOrDefault(vm.Key);
                if (cached is not null && cached.Uid == vm.Uid && !IsOlder(vm.ResourceVersion, cached.ResourceVersion))
                {
                    Publish(new InformerEvent(InformerEventType.Deleted, cached, cached));
                }

                return;
            }

            // The key's slot is found once and written in place (issue 15, twelfth pass: a read and then a write of the
            // cache, ~3 events per Running Create, each a lookup in a dictionary of every record). The reference is not held
            // past the write: the handlers run after it, as Publish runs them.
            ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_cache, vm.Key, out var exists);
            var known = slot;
            InformerEvent ev;
            if (!exists)
            {
                ev = new InformerEvent(InformerEventType.Added, vm, null);
            }
            else if (known!.ResourceVersion != vm.ResourceVersion && (known.Uid != vm.Uid || !IsOlder(vm.ResourceVersion, known.ResourceVersion)))
            {
                ev = new InformerEvent(InformerEventType.Modified, vm, known);
            }
            else
            {
                return; // an event queued before the list can arrive after it: never let it overwrite newer state
            }

            slot = vm;
            Tell(ev);
        }
    }

    /// <summary>Updates the cache and tells everyone. Called under the lock, so handlers and streams see one order.</summary>
    private void Publish(InformerEvent ev)
    {
        if (ev.Type == InformerEventType.Deleted)
        {
            _cache.Remove(ev.MicroVm.Key);
        }
        else
        {
            _cache[ev.MicroVm.Key] = ev.MicroVm;
        }

        Tell(ev);
    }

    /// <summary>Runs the handlers and offers the event to the streams, once the cache holds it. Under the lock.</summary>
    private void Tell(InformerEvent ev)
    {
        foreach (var handler in _handlers)
        {
            try
            {
                handler(ev);
            }
            catch (Exception ex)
            {
                LogHandlerFailed(ev.MicroVm.Key, ex.Message, ex);
            }
        }

        for (var i = _subscriptions.Count - 1; i >= 0; i--)
        {
            if (!_subscriptions[i].Offer(ev))
            {
                _subscriptions.RemoveAt(i);
            }
        }
    }

    private static List<MicroVm> Ordered(IEnumerable<MicroVm> vms) =>
        vms.OrderBy(v => v.Spec.Namespace, StringComparer.Ordinal).ThenBy(v => v.Spec.Id, StringComparer.Ordinal).ToList();

    /// <summary>Resource versions are opaque; when both are integers (SQLite, etcd) a smaller one is older.</summary>
    internal static bool IsOlder(string candidate, string known) =>
        long.TryParse(candidate, NumberStyles.None, CultureInfo.InvariantCulture, out var c) &&
        long.TryParse(known, NumberStyles.None, CultureInfo.InvariantCulture, out var k) &&
        c < k;

    [LoggerMessage(1200, LogLevel.Warning, "informer: following the {Store} store failed ({Message}); retrying")]
    private partial void LogFollowFailed(string store, string message);

    [LoggerMessage(1201, LogLevel.Error, "informer: a handler failed on {Key}: {Message}")]
    private partial void LogHandlerFailed(VmKey key, string message, Exception ex);

    [LoggerMessage(1202, LogLevel.Error, "informer: a handler failed after a change: {Message}")]
    private partial void LogReleasedFailed(string message, Exception ex);
}

/// <summary>A client's view of the informer: a snapshot, then the changes after it, through a bounded buffer.</summary>
public sealed class InformerSubscription : IDisposable
{
    private readonly MicroVmInformer _informer;
    private readonly Func<MicroVm, bool> _filter;
    private readonly Channel<InformerEvent> _events;
    private readonly int _capacity;
    private readonly HashSet<VmKey> _visible;

    // Not disposed: it has no timer, and a cancel queued at overflow may still run after the subscription is disposed.
    private readonly CancellationTokenSource _overflowed = new();

    internal InformerSubscription(MicroVmInformer informer, IReadOnlyList<MicroVm> snapshot, Func<MicroVm, bool> filter, int capacity)
    {
        _informer = informer;
        _filter = filter;
        _capacity = capacity;
        Snapshot = snapshot;
        _visible = snapshot.Select(v => v.Key).ToHashSet();
        _events = Channel.CreateBounded<InformerEvent>(new BoundedChannelOptions(capacity) { SingleReader = true, SingleWriter = true });
    }

    /// <summary>The matching records when the subscription was made; the events continue from exactly there.</summary>
    public IReadOnlyList<MicroVm> Snapshot { get; }

    /// <summary>Changes after <see cref="Snapshot"/>. Ends with <see cref="InformerOverflowException"/> if the reader fell behind.</summary>
    public ChannelReader<InformerEvent> Events => _events.Reader;

    /// <summary>
    /// Cancelled once this subscription has overflowed, so a reader that is itself stuck (e.g. writing to a client
    /// that stopped reading) can stop at once instead of after its next read.
    /// </summary>
    public CancellationToken Overflowed => _overflowed.Token;

    public void Dispose()
    {
        _informer.Remove(this);
        _events.Writer.TryComplete();
    }

    /// <summary>Queues an event without waiting; false when this subscription is over (overflowed or completed).</summary>
    internal bool Offer(InformerEvent ev)
    {
        // A record that stops matching (e.g. its namespace filter) is reported as deleted to this stream; one that
        // starts matching as added.
        var matches = _filter(ev.MicroVm) && ev.Type != InformerEventType.Deleted;
        var wasVisible = _visible.Contains(ev.MicroVm.Key);
        InformerEvent? mapped = (matches, wasVisible) switch
        {
            (true, false) => ev with { Type = InformerEventType.Added },
            (true, true) => ev,
            (false, true) => new InformerEvent(InformerEventType.Deleted, ev.Previous ?? ev.MicroVm, ev.Previous),
            _ => null,
        };
        if (mapped is null)
        {
            return true;
        }

        if (matches)
        {
            _visible.Add(ev.MicroVm.Key);
        }
        else
        {
            _visible.Remove(ev.MicroVm.Key);
        }

        if (_events.Writer.TryWrite(mapped))
        {
            return true;
        }

        Complete(new InformerOverflowException(_capacity));
        // Off the informer's lock: the cancel runs the reader's callbacks (e.g. aborting a pending network write).
        ThreadPool.UnsafeQueueUserWorkItem(static cts => cts.Cancel(), _overflowed, preferLocal: false);
        return false;
    }

    internal void Complete(Exception? error) => _events.Writer.TryComplete(error);
}

/// <summary>A subscriber left more events unread than its buffer holds; its stream was ended so no one else waits for it.</summary>
public sealed class InformerOverflowException(int capacity)
    : Exception($"the watch fell more than {capacity} events behind and was ended; list again and watch again");

public static class InformerServiceCollectionExtensions
{
    /// <summary>Adds the shared informer (one per process) and runs it as a hosted service. Safe to call more than once.</summary>
    public static IServiceCollection AddMicroVmInformer(this IServiceCollection services, Action<InformerOptions>? configure = null)
    {
        var options = services.AddOptions<InformerOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.Validate(o => o.ResyncInterval > TimeSpan.Zero && o.RetryDelay > TimeSpan.Zero, "Informer:ResyncInterval and Informer:RetryDelay must be positive")
            .ValidateOnStart();
        services.TryAddSingleton(TimeProvider.System);
        if (!services.Any(d => d.ServiceType == typeof(MicroVmInformer)))
        {
            services.AddSingleton(sp => new MicroVmInformer( // a factory: Composition/ServiceFactories says why
                sp.GetRequiredService<IMicroVmStore>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<IOptions<InformerOptions>>(),
                sp.LoggerFor<MicroVmInformer>(), sp.GetService<IVersionListing>()));
            services.AddHostedService(sp => sp.GetRequiredService<MicroVmInformer>());
            services.TryAddSingleton<IMicroVmCache>(sp => sp.GetRequiredService<MicroVmInformer>());
        }

        return services;
    }
}

using Hypercore.Core.Tests.Fakes;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Informers;

/// <summary>
/// Issue 15 (tidy5): the informer's records by uid, for the reconciler's live-state reports. Checked after every kind
/// of change against the informer's own cache, so the index cannot drift from it.
/// </summary>
public class UidIndexTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private InMemoryStore _store = null!;
    private FakeTimeProvider _time = null!;
    private MicroVmInformer _informer = null!;

    [SetUp]
    public async Task SetUp()
    {
        _store = new InMemoryStore();
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 12, 0, 0, TimeSpan.Zero));
        _informer = new MicroVmInformer(_store, _time, Options.Create(new InformerOptions { ResyncInterval = TimeSpan.FromHours(1) }),
            NullLogger<MicroVmInformer>.Instance);
        await _informer.StartAsync(CancellationToken.None);
        await _informer.Synced.WaitAsync(Patience);
    }

    [TearDown]
    public async Task TearDown()
    {
        await _informer.StopAsync(CancellationToken.None);
        _informer.Dispose();
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

    /// <summary>Every cached record is found by its uid, and nothing else is indexed.</summary>
    private void ShouldMatchTheCache(UidIndex index)
    {
        var cached = _informer.Unordered();
        index.Count.Should().Be(cached.Length);
        foreach (var vm in cached)
        {
            index.TryGetKey(vm.Uid, out var key).Should().BeTrue(vm.Uid);
            key.Should().Be(vm.Key);
        }
    }

    [Test]
    public async Task Index_StartsFromTheCache_ThenFollowsAddsAndDeletes()
    {
        var a = await _store.CreateAsync(Spec("a"));
        var b = await _store.CreateAsync(Spec("b"));
        await Until(() => _informer.Count == 2);
        using var index = new UidIndex(_informer);
        ShouldMatchTheCache(index);

        var c = await _store.CreateAsync(Spec("c"));
        await Until(() => index.Count == 3);
        index.TryGetKey(c.Uid, out var key).Should().BeTrue();
        key.Should().Be(c.Key);

        await _store.RemoveAsync(a.Key);
        await Until(() => index.Count == 2);
        index.TryGetKey(a.Uid, out _).Should().BeFalse("a deleted record's uid is no longer found");
        index.TryGetKey("no-such-uid", out _).Should().BeFalse();
        index.TryGetKey(b.Uid, out key).Should().BeTrue();
        key.Should().Be(b.Key);
        ShouldMatchTheCache(index);
    }

    [Test]
    public async Task Index_StatusAndSpecWrites_KeepTheEntry()
    {
        using var index = new UidIndex(_informer);
        var a = await _store.CreateAsync(Spec("a"));
        a = await _store.UpdateStatusAsync(a.Key, a.Status with { Phase = Phase.Running, Pid = 42 }, a.ResourceVersion);
        a = await _store.UpdateSpecAsync(a.Key, a.Spec with { MemoryInMb = 256 }, a.ResourceVersion);
        await Until(() => _informer.Get(a.Key)?.ResourceVersion == a.ResourceVersion);
        ShouldMatchTheCache(index);
        index.TryGetKey(a.Uid, out var key).Should().BeTrue();
        key.Should().Be(a.Key);
    }

    [Test]
    public async Task Index_RecordReplacedUnderTheSameKey_FindsOnlyTheNewUid()
    {
        using var index = new UidIndex(_informer);
        var old = await _store.CreateAsync(Spec("a"));
        await Until(() => index.Count == 1);

        // The old incarnation's delete is lost; the informer sees the new one as a change of the cached record.
        _store.RemoveSilently(old.Key);
        var fresh = await _store.CreateAsync(Spec("a"));
        await Until(() => _informer.Get(fresh.Key)?.Uid == fresh.Uid);

        index.TryGetKey(old.Uid, out _).Should().BeFalse();
        index.TryGetKey(fresh.Uid, out var key).Should().BeTrue();
        key.Should().Be(fresh.Key);
        ShouldMatchTheCache(index);
    }

    [Test]
    public async Task Index_AfterARelist_DropsWhatWentUnseenAndAddsWhatCame()
    {
        using var index = new UidIndex(_informer);
        var a = await _store.CreateAsync(Spec("a"));
        var b = await _store.CreateAsync(Spec("b"));
        await Until(() => index.Count == 2);

        _store.RemoveSilently(a.Key); // deleted with the event lost: only a relist finds it gone
        var relists = _informer.Relists;
        _store.Inject(new StoreEvent(StoreEventType.Resync, null));
        await Until(() => _informer.Relists > relists && _informer.Count == 1);

        index.TryGetKey(a.Uid, out _).Should().BeFalse();
        index.TryGetKey(b.Uid, out _).Should().BeTrue();
        ShouldMatchTheCache(index);

        var c = await _store.CreateAsync(Spec("c"));
        relists = _informer.Relists;
        _informer.RequestRelist();
        await Until(() => _informer.Relists > relists);
        index.TryGetKey(c.Uid, out var key).Should().BeTrue();
        key.Should().Be(c.Key);
        ShouldMatchTheCache(index);
    }

    [Test]
    public async Task Index_Disposed_StopsFollowing()
    {
        var index = new UidIndex(_informer);
        index.Dispose();
        var a = await _store.CreateAsync(Spec("a"));
        await Until(() => _informer.Get(a.Key) is not null);
        index.TryGetKey(a.Uid, out _).Should().BeFalse();
        index.Count.Should().Be(0);
    }
}

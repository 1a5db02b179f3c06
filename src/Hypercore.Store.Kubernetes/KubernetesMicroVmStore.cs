using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Hypercore.MicroVms;
using Hypercore.Telemetry;
using Hypercore.Store.Kubernetes.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Store.Kubernetes;

/// <summary>
/// The store port on MicroVM custom resources. Desired state is the resource's spec, observed state its status
/// (written through the /status subresource), the claim is a finalizer and deletion is the API server's
/// deletionTimestamp. Only MicroVMs assigned to this node are visible (spec.nodeName, else the node label).
/// </summary>
public sealed partial class KubernetesMicroVmStore : IMicroVmStore, Reconciliation.IMovedAwayLookup, IDisposable
{
    public const string StoreName = "kubernetes";

    private const int MaxConflictRetries = 5;

    private static readonly Counter<long> WatchReconnects = HypercoreTelemetry.Meter.CreateCounter<long>(
        "hypercore.store.kubernetes.watch.reconnects", "{reconnect}", "Watch streams reopened from the last resourceVersion after they ended or broke.");

    private static readonly Counter<long> WatchRelists = HypercoreTelemetry.Meter.CreateCounter<long>(
        "hypercore.store.kubernetes.watch.relists", "{relist}", "Re-lists after 410 Gone or a failed list; each is reported to watchers as Resync.");

    private readonly MicroVmApi _api;
    private readonly KubernetesStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly Random _random;
    private readonly ILogger<KubernetesMicroVmStore> _log;
    private readonly MicroVmEventRecorder _events;
    private readonly IDisposable? _ownedClient;

    /// <summary>Last phase seen per record and the resourceVersion it was seen at, to spot phase changes without a read.</summary>
    private readonly ConcurrentDictionary<VmKey, (string ResourceVersion, Phase Phase)> _seen = new();

    /// <summary>Initial lists of watches started but not finished; writes and lists wait for them (see <see cref="WatchAsync"/>).</summary>
    private readonly ConcurrentDictionary<Task, byte> _watchStarts = new();

    /// <param name="client">The API client; disposed with the store when <paramref name="ownsClient"/>.</param>
    /// <param name="random">Jitter source for reconnect and watch timeouts; injected so that tests are repeatable.</param>
    public KubernetesMicroVmStore(
        KubernetesApiClient client,
        IOptions<KubernetesStoreOptions> options,
        TimeProvider time,
        ILogger<KubernetesMicroVmStore> log,
        Random? random = null,
        bool ownsClient = false)
    {
        _options = options.Value;
        _time = time;
        _random = random ?? Random.Shared;
        _log = log;
        _api = new MicroVmApi(client, _options, time);
        _events = new MicroVmEventRecorder(_api, _options, time, log);
        _ownedClient = ownsClient ? client : null;
    }

    public string Name => StoreName;

    public async Task<MicroVm?> GetAsync(VmKey key, CancellationToken cancellationToken = default)
    {
        if (!InScope(key.Namespace))
        {
            return null;
        }

        var obj = await _api.GetAsync(key, cancellationToken);
        return obj is not null && IsMine(obj) ? Remember(obj) : null;
    }

    public async Task<MicroVm?> GetByUidAsync(string uid, CancellationToken cancellationToken = default)
    {
        var (items, _) = await _api.ListAsync(_options.Namespace, cancellationToken);
        var obj = items.FirstOrDefault(i => (string?)i["metadata"]?["uid"] == uid && IsMine(i));
        return obj is null ? null : Remember(obj);
    }

    public async Task<IReadOnlyList<MicroVm>> ListAsync(string? @namespace = null, CancellationToken cancellationToken = default)
    {
        if (@namespace is not null && !InScope(@namespace))
        {
            return [];
        }

        // A list made after WatchAsync must not predate the watch's own list: a change between the two would be in
        // neither the list nor the watch (the reconciler watches first, then lists).
        await AwaitWatchStartsAsync();
        var (items, _) = await _api.ListAsync(@namespace ?? _options.Namespace, cancellationToken);
        return items.Where(IsMine).Select(Remember)
            .OrderBy(v => v.Spec.Namespace, StringComparer.Ordinal).ThenBy(v => v.Spec.Id, StringComparer.Ordinal).ToList();
    }

    public async Task<MicroVm> CreateAsync(MicroVmSpec spec, CancellationToken cancellationToken = default)
    {
        RequireScope(spec.Namespace);
        await AwaitWatchStartsAsync();
        var created = await _api.CreateAsync(new VmKey(spec.Namespace, spec.Id), MicroVmResource.NewResource(spec, _options.NodeName), cancellationToken);
        LogCreated(new VmKey(spec.Namespace, spec.Id), MicroVmResource.AssignedNode(created));
        return Remember(created);
    }

    public async Task<MicroVm> UpdateSpecAsync(VmKey key, MicroVmSpec spec, string expectedResourceVersion, CancellationToken cancellationToken = default)
    {
        if (spec.Namespace != key.Namespace || spec.Id != key.Id)
        {
            throw new StoreException($"spec names {spec.Namespace}/{spec.Id} but the update is for {key}; the id and namespace of a microvm cannot change");
        }

        await AwaitWatchStartsAsync();
        var current = await GetMineAsync(key, cancellationToken);
        if (Rv(current) != expectedResourceVersion)
        {
            throw new ConflictException(key);
        }

        var updated = (JsonObject)current.DeepClone();
        var meta = (JsonObject)updated["metadata"]!;
        meta["labels"] = MicroVmResource.LabelsFor(spec, current);
        meta["resourceVersion"] = expectedResourceVersion;
        updated["spec"] = MicroVmResource.SpecToJson(spec);
        if (spec.Placement is null && current["spec"]?["placement"] is { } placement)
        {
            updated["spec"]!["placement"] = placement.DeepClone(); // Kubernetes issue 13: a writer that sent no placement keeps the stored one
        }

        updated.Remove("status"); // ignored by the main resource anyway; never send a stale copy
        return Remember(await _api.ReplaceAsync(key, updated, cancellationToken));
    }

    public async Task<MicroVm> UpdateStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default)
    {
        await AwaitWatchStartsAsync();
        Phase before;
        if (_seen.TryGetValue(key, out var seen) && seen.ResourceVersion == expectedResourceVersion)
        {
            before = seen.Phase;
        }
        else
        {
            var current = await GetMineAsync(key, cancellationToken);
            if (Rv(current) != expectedResourceVersion)
            {
                throw new ConflictException(key);
            }

            before = MicroVmResource.ToMicroVm(current).Status.Phase;
        }

        var body = new JsonObject
        {
            ["apiVersion"] = MicroVmResource.ApiVersion,
            ["kind"] = MicroVmResource.Kind,
            ["metadata"] = new JsonObject
            {
                ["name"] = key.Id,
                ["namespace"] = key.Namespace,
                ["resourceVersion"] = expectedResourceVersion,
            },
            ["status"] = MicroVmResource.StatusToJson(status),
        };
        var vm = Remember(await _api.ReplaceStatusAsync(key, body, cancellationToken));
        if (vm.Status.Phase != before && MicroVmEventRecorder.ForPhaseChange(before, vm.Status) is { } ev)
        {
            await _events.RecordAsync(vm, ev.Type, ev.Reason, ev.Message, cancellationToken);
        }

        return vm;
    }

    public async Task<MicroVm> ClaimAsync(VmKey key, CancellationToken cancellationToken = default)
    {
        await AwaitWatchStartsAsync();
        for (var attempt = 1; ; attempt++)
        {
            var current = await GetMineAsync(key, cancellationToken);
            if (MicroVmResource.HasFinalizer(current) || current["metadata"]?["deletionTimestamp"] is not null)
            {
                // Claimed already, or being deleted: the API server forbids new finalizers on a deleting object.
                return Remember(current);
            }

            try
            {
                var claimed = await ReplaceFinalizersAsync(key, current, add: true, cancellationToken);
                LogClaimed(key);
                return claimed;
            }
            catch (ConflictException) when (attempt < MaxConflictRetries)
            {
            }
        }
    }

    public async Task<MicroVm> MarkForDeletionAsync(VmKey key, CancellationToken cancellationToken = default)
    {
        var current = await ClaimAsync(key, cancellationToken); // the record must outlive the DELETE until RemoveAsync
        if (current.IsDeleting)
        {
            return current;
        }

        var deleting = await _api.DeleteAsync(key, current.Uid, cancellationToken);
        if (deleting is not null)
        {
            return Remember(deleting);
        }

        // Someone removed the finalizer between the claim and the DELETE: the object is gone already.
        return current with { DeletionRequestedAt = _time.GetUtcNow() };
    }

    public async Task RemoveAsync(VmKey key, CancellationToken cancellationToken = default)
    {
        await AwaitWatchStartsAsync();
        for (var attempt = 1; ; attempt++)
        {
            var current = await _api.GetAsync(key, cancellationToken);
            if (current is null || !IsMine(current))
            {
                _seen.TryRemove(key, out _);
                return;
            }

            var vm = MicroVmResource.ToMicroVm(current);
            try
            {
                if (vm.Claimed)
                {
                    await ReplaceFinalizersAsync(key, current, add: false, cancellationToken);
                }

                if (!vm.IsDeleting)
                {
                    await _api.DeleteAsync(key, vm.Uid, cancellationToken);
                }
            }
            catch (NotFoundException)
            {
            }
            catch (ConflictException) when (attempt < MaxConflictRetries)
            {
                continue;
            }

            _seen.TryRemove(key, out _);
            LogRemoved(key);
            await _events.RecordAsync(vm, "Normal", "Deleted", "the VM and its files are gone", cancellationToken);
            return;
        }
    }

    /// <summary>
    /// Lists, then watches from the list's resourceVersion with bookmarks. A 410 Gone re-lists and emits Resync; a
    /// stream that ends or breaks is reopened from the last resourceVersion seen, after an exponential backoff with
    /// jitter. The initial list starts at the call, and writes and lists through this store wait for it, so every
    /// change made through the store after the call is seen by the watch, and a list made after the call is not older
    /// than the watch's starting point.
    /// </summary>
    public IAsyncEnumerable<StoreEvent> WatchAsync(CancellationToken cancellationToken = default)
    {
        var start = ListSnapshotAsync(cancellationToken);
        _watchStarts.TryAdd(start, 0);
        _ = start.ContinueWith(t => _watchStarts.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return WatchCoreAsync(start, cancellationToken);
    }

    public void Dispose() => _ownedClient?.Dispose();

    /// <summary>
    /// Kubernetes issue 13: the MicroVMs the node lifecycle controller moved off this node (label
    /// <see cref="MicroVmResource.MovedFromLabel"/>), so that the daemon removes hypervisors it still has for them.
    /// </summary>
    public async Task<IReadOnlyList<MicroVm>> MovedAwayAsync(CancellationToken cancellationToken)
    {
        if (_options.NodeName.Length == 0)
        {
            return [];
        }

        var (items, _) = await _api.ListAsync(_options.Namespace, $"{MicroVmResource.MovedFromLabel}={_options.NodeName}", cancellationToken);
        return [.. items.Where(i => !IsMine(i)).Select(MicroVmResource.ToMicroVm)];
    }

    private async IAsyncEnumerable<StoreEvent> WatchCoreAsync(Task<Snapshot> start, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var channel = Channel.CreateUnbounded<StoreEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pump = PumpAsync(start, channel.Writer, cts.Token);
        try
        {
            await foreach (var ev in channel.Reader.ReadAllAsync(cancellationToken))
            {
                yield return ev;
            }
        }
        finally
        {
            await cts.CancelAsync();
            await pump;
        }
    }

    private async Task PumpAsync(Task<Snapshot> start, ChannelWriter<StoreEvent> writer, CancellationToken ct)
    {
        try
        {
            Snapshot? snapshot = null;
            var resync = false;
            try
            {
                snapshot = await start;
            }
            catch (StoreException ex)
            {
                LogListFailed(ex.Message);
                resync = true; // changes may be missed until a list succeeds
            }

            var failures = 0;
            while (!ct.IsCancellationRequested)
            {
                if (snapshot is null)
                {
                    try
                    {
                        snapshot = await ListSnapshotAsync(ct);
                    }
                    catch (StoreException ex)
                    {
                        LogListFailed(ex.Message);
                        await Task.Delay(ReconnectDelay(++failures), _time, ct);
                        continue;
                    }

                    if (resync)
                    {
                        WatchRelists.Add(1);
                        await writer.WriteAsync(new StoreEvent(StoreEventType.Resync, null), ct);
                        resync = false;
                    }
                }

                var (outcome, received, error) = await StreamAsync(snapshot, writer, ct);
                if (outcome == StreamOutcome.Gone)
                {
                    LogGone(snapshot.ResourceVersion);
                    snapshot = null;
                    resync = true;
                    failures = 0;
                    continue;
                }

                failures = received ? 1 : failures + 1;
                var delay = ReconnectDelay(failures);
                WatchReconnects.Add(1);
                LogWatchEnded(snapshot.ResourceVersion, error ?? "closed by the server", delay.TotalMilliseconds);
                await Task.Delay(delay, _time, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            writer.TryComplete();
        }
    }

    private async Task<(StreamOutcome Outcome, bool Received, string? Error)> StreamAsync(Snapshot snapshot, ChannelWriter<StoreEvent> writer, CancellationToken ct)
    {
        Exception? streamError = null;
        var received = false;
        var timeout = (int)Math.Ceiling(_options.WatchTimeout.TotalSeconds * (1 + NextJitter()));
        try
        {
            await foreach (var (type, obj) in _api.WatchAsync(_options.Namespace, snapshot.ResourceVersion, timeout, e => streamError ??= e, ct))
            {
                received = true;
                if ((string?)obj["metadata"]?["resourceVersion"] is { Length: > 0 } rv)
                {
                    snapshot.ResourceVersion = rv;
                }

                if (type is WatchEventType.Bookmark or WatchEventType.Error)
                {
                    continue;
                }

                MicroVm vm;
                try
                {
                    vm = MicroVmResource.ToMicroVm(obj);
                }
                catch (Exception ex) when (ex is FormatException or InvalidOperationException)
                {
                    LogMalformed((string?)obj["metadata"]?["name"] ?? "?", ex.Message);
                    continue;
                }

                StoreEvent? ev = null;
                if (type == WatchEventType.Deleted)
                {
                    if (snapshot.Visible.Remove(vm.Key) || IsMine(obj))
                    {
                        ev = new StoreEvent(StoreEventType.Deleted, vm);
                    }
                }
                else if (IsMine(obj))
                {
                    // A MicroVM re-labelled onto this node appears as Added even though the server says MODIFIED.
                    var appeared = snapshot.Visible.Add(vm.Key);
                    ev = new StoreEvent(appeared || type == WatchEventType.Added ? StoreEventType.Added : StoreEventType.Modified, vm);
                }
                else if (snapshot.Visible.Remove(vm.Key))
                {
                    // Re-labelled to another node: gone from this node's point of view.
                    ev = new StoreEvent(StoreEventType.Deleted, vm);
                }

                if (ev is null)
                {
                    continue;
                }

                if (ev.Type == StoreEventType.Deleted)
                {
                    _seen.TryRemove(vm.Key, out _);
                }
                else
                {
                    Remember(vm);
                }

                await writer.WriteAsync(ev, ct);
            }
        }
        catch (KubernetesApiException ex) when (ex.StatusCode == HttpStatusCode.Gone)
        {
            return (StreamOutcome.Gone, received, null);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested)
        {
            // Whatever broke the stream (transport, decoding, a client bug), the watch must go on: reopen it.
            return (StreamOutcome.Ended, received, $"{ex.GetType().Name}: {ex.Message}");
        }

        if (streamError is KubernetesStatusException { Code: (int)HttpStatusCode.Gone })
        {
            return (StreamOutcome.Gone, received, null);
        }

        return (StreamOutcome.Ended, received, streamError?.Message);
    }

    private async Task<Snapshot> ListSnapshotAsync(CancellationToken ct)
    {
        var (items, rv) = await _api.ListAsync(_options.Namespace, ct);
        var visible = new HashSet<VmKey>();
        foreach (var item in items.Where(IsMine))
        {
            visible.Add(Remember(item).Key);
        }

        return new Snapshot { ResourceVersion = rv, Visible = visible };
    }

    private async Task<MicroVm> ReplaceFinalizersAsync(VmKey key, JsonObject current, bool add, CancellationToken ct)
    {
        var updated = (JsonObject)current.DeepClone();
        updated.Remove("status");
        var meta = (JsonObject)updated["metadata"]!;
        var finalizers = (meta["finalizers"] as JsonArray)?.Select(f => (string?)f).Where(f => f is not null && f != MicroVmResource.Finalizer).ToList() ?? [];
        if (add)
        {
            finalizers.Add(MicroVmResource.Finalizer);
        }

        meta["finalizers"] = new JsonArray(finalizers.Select(f => (JsonNode?)JsonValue.Create(f)).ToArray());
        var result = await _api.ReplaceAsync(key, updated, ct);
        return Remember(result);
    }

    private async Task<JsonObject> GetMineAsync(VmKey key, CancellationToken ct)
    {
        if (!InScope(key.Namespace))
        {
            throw new NotFoundException(key);
        }

        var obj = await _api.GetAsync(key, ct);
        return obj is not null && IsMine(obj) ? obj : throw new NotFoundException(key);
    }

    private async Task AwaitWatchStartsAsync()
    {
        foreach (var start in _watchStarts.Keys)
        {
            try
            {
                await start;
            }
            catch (Exception ex) when (ex is StoreException or OperationCanceledException)
            {
                // The watch re-lists on its own and reports Resync; the write need not wait for that.
            }
        }
    }

    private MicroVm Remember(JsonObject obj) => Remember(MicroVmResource.ToMicroVm(obj));

    private MicroVm Remember(MicroVm vm)
    {
        _seen[vm.Key] = (vm.ResourceVersion, vm.Status.Phase);
        return vm;
    }

    private bool IsMine(JsonObject obj) => MicroVmResource.AssignedNode(obj) == _options.NodeName;

    private bool InScope(string ns) => _options.Namespace.Length == 0 || _options.Namespace == ns;

    private void RequireScope(string ns)
    {
        if (!InScope(ns))
        {
            throw new StoreException($"namespace \"{ns}\" is outside this store's namespace \"{_options.Namespace}\"");
        }
    }

    private static string Rv(JsonObject obj) => (string?)obj["metadata"]?["resourceVersion"] ?? "";

    private double NextJitter()
    {
        lock (_random)
        {
            return _random.NextDouble();
        }
    }

    /// <summary>Exponential in the number of consecutive failures, capped, with "equal jitter" (half fixed, half random).</summary>
    internal TimeSpan ReconnectDelay(int failures)
    {
        var exp = _options.ReconnectBaseDelay.Ticks * Math.Pow(2, Math.Clamp(failures - 1, 0, 30));
        var capped = Math.Min(exp, _options.ReconnectMaxDelay.Ticks);
        return TimeSpan.FromTicks((long)((capped / 2) + (capped / 2 * NextJitter())));
    }

    private enum StreamOutcome
    {
        Ended,
        Gone,
    }

    private sealed class Snapshot
    {
        public required string ResourceVersion { get; set; }

        public required HashSet<VmKey> Visible { get; init; }
    }

    [LoggerMessage(1300, LogLevel.Information, "{Key}: created MicroVM resource for node {Node}")]
    private partial void LogCreated(VmKey key, string node);

    [LoggerMessage(1301, LogLevel.Information, "{Key}: finalizer added (claimed by this node)")]
    private partial void LogClaimed(VmKey key);

    [LoggerMessage(1303, LogLevel.Information, "{Key}: finalizer removed; the API server deletes the resource")]
    private partial void LogRemoved(VmKey key);

    [LoggerMessage(1304, LogLevel.Warning, "kubernetes: listing MicroVMs failed: {Message}")]
    private partial void LogListFailed(string message);

    [LoggerMessage(1305, LogLevel.Information, "kubernetes: watch from resourceVersion {ResourceVersion} is too old (410 Gone); re-listing")]
    private partial void LogGone(string resourceVersion);

    [LoggerMessage(1307, LogLevel.Warning, "kubernetes: skipped malformed MicroVM {Name} in the watch: {Message}")]
    private partial void LogMalformed(string name, string message);

    [LoggerMessage(1306, LogLevel.Debug, "kubernetes: watch at resourceVersion {ResourceVersion} ended ({Reason}); reopening in {DelayMs:0} ms")]
    private partial void LogWatchEnded(string resourceVersion, string reason, double delayMs);
}

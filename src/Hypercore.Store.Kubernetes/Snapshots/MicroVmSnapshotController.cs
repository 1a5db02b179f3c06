using System.Net;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Hypercore.MicroVms;
using Hypercore.Operations;
using Hypercore.Snapshots;
using Hypercore.Store.Kubernetes.Client;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Store.Kubernetes.Snapshots;

/// <summary>
/// Takes and deletes the snapshots MicroVMSnapshot resources ask for, on the node that runs their MicroVM, through the
/// same <see cref="SnapshotManager"/> as the SnapshotService. Like the MicroVM store, a node lists and watches only
/// resources labelled with it, plus the unlabelled ones (new, not yet taken by any node): for one of those it reads
/// the named MicroVM, and only the node that MicroVM is assigned to claims it (label + finalizer, in one write that
/// fails for every other writer on the resourceVersion). A missing or unscheduled MicroVM shows in status with its
/// reason, written by whichever node looks first. A taken snapshot is never taken again: the resource is Ready (or
/// Failed) until it is deleted, and its deletion deletes the files before the finalizer goes.
/// </summary>
public sealed partial class MicroVmSnapshotController : BackgroundService
{
    private readonly KubernetesApiClient _client;
    private readonly IMicroVmStore _store;
    private readonly SnapshotManager _snapshots;
    private readonly KubernetesStoreOptions _options;
    private readonly MicroVmSnapshotOptions _settings;
    private readonly TimeProvider _time;
    private readonly ILogger<MicroVmSnapshotController> _log;
    private readonly Channel<(string Ns, string Name)> _queue = Channel.CreateUnbounded<(string, string)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly HashSet<(string Ns, string Name)> _queued = [];

    public MicroVmSnapshotController(
        KubernetesApiClient client, IMicroVmStore store, SnapshotManager snapshots, IOptions<KubernetesStoreOptions> options,
        IOptions<MicroVmSnapshotOptions> settings, TimeProvider time, ILogger<MicroVmSnapshotController> log)
    {
        _client = client;
        _store = store;
        _snapshots = snapshots;
        _options = options.Value;
        _settings = settings.Value;
        _time = time;
        _log = log;
    }

    private string NodeSelector => $"{MicroVmResource.NodeLabel}={_options.NodeName}";

    private static string UnassignedSelector => "!" + MicroVmResource.NodeLabel;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var watches = new[] { NodeSelector, UnassignedSelector }.Select(s => WatchLoopAsync(s, stoppingToken)).ToList();
        try
        {
            await foreach (var key in _queue.Reader.ReadAllAsync(stoppingToken))
            {
                lock (_queued)
                {
                    _queued.Remove(key);
                }

                try
                {
                    if (await ReconcileAsync(key.Ns, key.Name, stoppingToken) is { } again)
                    {
                        Requeue(key, again, stoppingToken);
                    }
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    LogReconcileFailed(key.Ns, key.Name, ex.Message);
                    Requeue(key, _settings.RetryInterval, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await Task.WhenAll(watches);
    }

    /// <summary>
    /// One pass over one resource; returns when to look again (a snapshot waiting for its MicroVM, a conflict), or
    /// null when nothing is left to do until the resource changes.
    /// </summary>
    public async Task<TimeSpan?> ReconcileAsync(string ns, string name, CancellationToken ct)
    {
        var obj = await GetAsync(ns, name, ct);
        if (obj is null)
        {
            return null;
        }

        var node = MicroVmSnapshotResource.Node(obj);
        if (node.Length > 0 && node != _options.NodeName)
        {
            return null; // another node's
        }

        try
        {
            if (node.Length == 0)
            {
                return await AssignAsync(obj, ct);
            }

            if (MicroVmSnapshotResource.IsDeleting(obj))
            {
                await DeleteFilesAsync(obj, ct);
                return null;
            }

            if (!MicroVmSnapshotResource.HasFinalizer(obj))
            {
                obj = await ReplaceAsync(MicroVmSnapshotResource.WithClaim(obj, null, finalizer: true), ct);
            }

            return await TakeAsync(obj, ct);
        }
        catch (KubernetesApiException ex) when (ex.StatusCode == HttpStatusCode.Conflict)
        {
            return TimeSpan.Zero; // changed meanwhile: read it again
        }
        catch (KubernetesApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>An unlabelled resource: claim it when its MicroVM runs here; say why not when it is missing or unplaced.</summary>
    private async Task<TimeSpan?> AssignAsync(JsonObject obj, CancellationToken ct)
    {
        var ns = MicroVmSnapshotResource.Namespace(obj);
        var vmName = MicroVmSnapshotResource.MicroVmName(obj);
        if (MicroVmSnapshotResource.IsDeleting(obj))
        {
            return null; // never claimed, so no node holds a finalizer or files
        }

        if (MicroVmSnapshotResource.Phase(obj) == MicroVmSnapshotResource.PhaseFailed)
        {
            return null;
        }

        var vm = await GetMicroVmAsync(ns, vmName, ct);
        if (vm is null)
        {
            await WriteStatusAsync(obj, MicroVmSnapshotResource.PhaseFailed, MicroVmSnapshotResource.ReasonMicroVmNotFound,
                $"MicroVM \"{vmName}\" does not exist in namespace \"{ns}\"; a MicroVMSnapshot names a MicroVM of its own namespace. " +
                "Delete this MicroVMSnapshot and create it again once the MicroVM exists", null, null, ct);
            return null;
        }

        var assigned = MicroVmResource.AssignedNode(vm);
        if (assigned.Length == 0)
        {
            await WriteStatusAsync(obj, MicroVmSnapshotResource.PhasePending, MicroVmSnapshotResource.ReasonMicroVmNotScheduled,
                $"MicroVM \"{vmName}\" is not assigned to a node yet; the snapshot is taken by its node once it runs", null, null, ct);
            return _settings.RetryInterval;
        }

        if (assigned != _options.NodeName)
        {
            return null; // its node claims it
        }

        var claimed = await ReplaceAsync(MicroVmSnapshotResource.WithClaim(obj, _options.NodeName, finalizer: true), ct);
        LogClaimed(ns, MicroVmSnapshotResource.Name(obj), vmName);
        return await TakeAsync(claimed, ct);
    }

    /// <summary>A resource of this node, holding the finalizer: take the snapshot once; keep a taken one's status true.</summary>
    private async Task<TimeSpan?> TakeAsync(JsonObject obj, CancellationToken ct)
    {
        var ns = MicroVmSnapshotResource.Namespace(obj);
        var name = MicroVmSnapshotResource.Name(obj);
        var uid = MicroVmSnapshotResource.Uid(obj);
        var vmName = MicroVmSnapshotResource.MicroVmName(obj);
        var phase = MicroVmSnapshotResource.Phase(obj);
        var path = _snapshots.Store.PathOf(name);

        if (phase == MicroVmSnapshotResource.PhaseFailed)
        {
            return null; // a snapshot is taken once; a failed one stays failed (its message says what to do)
        }

        var existing = _snapshots.Store.Read(name);
        if (existing is not null && existing.Owner == uid)
        {
            // Taken (perhaps by a daemon that died before it wrote Ready); keep saying so.
            await WriteStatusAsync(obj, MicroVmSnapshotResource.PhaseReady, MicroVmSnapshotResource.ReasonTaken,
                $"snapshot of MicroVM \"{existing.SourceId}\" on node \"{_options.NodeName}\"; restore it with spec.restoreFrom: {name} on this node",
                existing, path, ct);
            return null;
        }

        if (phase == MicroVmSnapshotResource.PhaseReady)
        {
            await WriteStatusAsync(obj, MicroVmSnapshotResource.PhaseFailed, MicroVmSnapshotResource.ReasonFilesMissing,
                $"the snapshot's files are gone from {path} on node \"{_options.NodeName}\" (removed outside Kubernetes); delete this MicroVMSnapshot", null, null, ct);
            return null;
        }

        if (existing is not null)
        {
            await WriteStatusAsync(obj, MicroVmSnapshotResource.PhaseFailed, MicroVmSnapshotResource.ReasonNameTaken,
                $"node \"{_options.NodeName}\" already holds a snapshot named \"{name}\" (of MicroVM {existing.Namespace}/{existing.SourceId}, " +
                $"{(existing.Owner is null ? "taken through the API" : "of another MicroVMSnapshot")}); snapshot names are unique per node: " +
                "delete this MicroVMSnapshot and create one with another name", null, null, ct);
            return null;
        }

        var vm = await _store.GetAsync(new VmKey(ns, vmName), ct);
        if (vm is null)
        {
            await WriteStatusAsync(obj, MicroVmSnapshotResource.PhaseFailed, MicroVmSnapshotResource.ReasonMicroVmNotFound,
                $"MicroVM \"{vmName}\" is no longer on node \"{_options.NodeName}\" (deleted or moved); delete this MicroVMSnapshot", null, null, ct);
            return null;
        }

        if (vm.Status.Phase is Phase.Pending or Phase.Provisioning && !vm.IsDeleting && vm.Spec.State != DesiredState.Stopped)
        {
            await WriteStatusAsync(obj, MicroVmSnapshotResource.PhasePending, MicroVmSnapshotResource.ReasonWaitingForMicroVm,
                $"MicroVM \"{vmName}\" is {vm.Status.Phase}; the snapshot is taken once it is Running or Paused", null, null, ct);
            return _settings.RetryInterval;
        }

        if (vm.Status.Phase is not (Phase.Running or Phase.Paused) || vm.IsDeleting)
        {
            await WriteStatusAsync(obj, MicroVmSnapshotResource.PhaseFailed, MicroVmSnapshotResource.ReasonMicroVmNotRunning,
                $"MicroVM \"{vmName}\" is {(vm.IsDeleting ? "being deleted" : vm.Status.Phase.ToString())}: only a Running or Paused MicroVM can be snapshotted; " +
                "start it, then delete this MicroVMSnapshot and create it again", null, null, ct);
            return null;
        }

        if (_snapshots.ProviderProblem(vm) is { } unsupported)
        {
            await WriteStatusAsync(obj, MicroVmSnapshotResource.PhaseFailed, MicroVmSnapshotResource.ReasonNotSupported, unsupported, null, null, ct);
            return null;
        }

        obj = await WriteStatusAsync(obj, MicroVmSnapshotResource.PhaseInProgress, MicroVmSnapshotResource.ReasonTaking,
            $"taking a snapshot of MicroVM \"{vmName}\" ({vm.Status.Phase}) on node \"{_options.NodeName}\"", null, null, ct);
        string reason, message;
        try
        {
            var manifest = await _snapshots.CreateAsync(vm, name, ct, owner: uid);
            LogTaken(ns, name, vmName, manifest.SizeBytes);
            await WriteStatusAsync(obj, MicroVmSnapshotResource.PhaseReady, MicroVmSnapshotResource.ReasonTaken,
                $"snapshot of MicroVM \"{vmName}\" on node \"{_options.NodeName}\"; restore it with spec.restoreFrom: {name} on this node",
                manifest, path, ct);
            return null;
        }
        catch (SnapshotExistsException ex)
        {
            (reason, message) = (MicroVmSnapshotResource.ReasonNameTaken, ex.Message);
        }
        catch (FailedPreconditionException ex)
        {
            (reason, message) = (MicroVmSnapshotResource.ReasonMicroVmNotRunning, ex.Message);
        }
        catch (OperationException ex)
        {
            (reason, message) = (MicroVmSnapshotResource.ReasonSnapshotFailed, ex.Message);
        }

        LogFailed(ns, name, reason, message);
        await WriteStatusAsync(obj, MicroVmSnapshotResource.PhaseFailed, reason, message, null, null, ct);
        return null;
    }

    private async Task DeleteFilesAsync(JsonObject obj, CancellationToken ct)
    {
        if (!MicroVmSnapshotResource.HasFinalizer(obj))
        {
            return;
        }

        var name = MicroVmSnapshotResource.Name(obj);
        var uid = MicroVmSnapshotResource.Uid(obj);
        if (_snapshots.Store.Read(name) is { } manifest && manifest.Owner == uid)
        {
            try
            {
                _snapshots.Delete(manifest, owner: uid);
                LogDeleted(MicroVmSnapshotResource.Namespace(obj), name, manifest.SizeBytes);
            }
            catch (SnapshotNotFoundException)
            {
            }
        }

        // Files first, then the finalizer: a daemon that dies in between deletes nothing twice and frees the resource next time.
        await ReplaceAsync(MicroVmSnapshotResource.WithClaim(obj, null, finalizer: false), ct);
    }

    private async Task<JsonObject> WriteStatusAsync(
        JsonObject obj, string phase, string reason, string message, SnapshotManifest? manifest, string? path, CancellationToken ct)
    {
        var node = MicroVmSnapshotResource.Node(obj) is { Length: > 0 } n ? n : null;
        var next = MicroVmSnapshotResource.WithStatus(obj, phase, reason, message, node, manifest, path, _time.GetUtcNow());
        if (MicroVmSnapshotResource.SameStatus(obj, next))
        {
            return obj;
        }

        var ns = MicroVmSnapshotResource.Namespace(obj);
        var name = MicroVmSnapshotResource.Name(obj);
        var written = MicroVmApi.Parse(await _client.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync(
            next, MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmSnapshotResource.Plural, name, cancellationToken: ct));
        if (phase != MicroVmSnapshotResource.Phase(obj))
        {
            LogPhase(ns, name, phase, reason, message);
        }

        return written;
    }

    private async Task<JsonObject> ReplaceAsync(JsonObject obj, CancellationToken ct) =>
        MicroVmApi.Parse(await _client.CustomObjects.ReplaceNamespacedCustomObjectAsync(
            obj, MicroVmResource.Group, MicroVmResource.Version, MicroVmSnapshotResource.Namespace(obj), MicroVmSnapshotResource.Plural,
            MicroVmSnapshotResource.Name(obj), cancellationToken: ct));

    private async Task<JsonObject?> GetAsync(string ns, string name, CancellationToken ct)
    {
        try
        {
            return MicroVmApi.Parse(await _client.CustomObjects.GetNamespacedCustomObjectAsync(
                MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmSnapshotResource.Plural, name, cancellationToken: ct));
        }
        catch (KubernetesApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>The named MicroVM wherever it runs (one GET), to tell "missing" from "another node's".</summary>
    private async Task<JsonObject?> GetMicroVmAsync(string ns, string name, CancellationToken ct)
    {
        try
        {
            return MicroVmApi.Parse(await _client.CustomObjects.GetNamespacedCustomObjectAsync(
                MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural, name, cancellationToken: ct));
        }
        catch (KubernetesApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>
    /// List, then watch from the list's resourceVersion until the server ends the watch (after
    /// <see cref="MicroVmSnapshotOptions.ResyncInterval"/>), then list again: every end of a watch is a full resync, so a
    /// missed event (or a 410 Gone) costs at most one interval. Every listed or changed resource is queued.
    /// </summary>
    private async Task WatchLoopAsync(string selector, CancellationToken ct)
    {
        var failures = 0;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var list = MicroVmApi.Parse(_options.Namespace.Length > 0
                    ? await _client.CustomObjects.ListNamespacedCustomObjectAsync(
                        MicroVmResource.Group, MicroVmResource.Version, _options.Namespace, MicroVmSnapshotResource.Plural, labelSelector: selector, cancellationToken: ct)
                    : await _client.CustomObjects.ListCustomObjectForAllNamespacesAsync(
                        MicroVmResource.Group, MicroVmResource.Version, MicroVmSnapshotResource.Plural, labelSelector: selector, cancellationToken: ct));
                foreach (var item in (list["items"] as JsonArray ?? []).OfType<JsonObject>())
                {
                    Enqueue(MicroVmSnapshotResource.Namespace(item), MicroVmSnapshotResource.Name(item));
                }

                var rv = (string?)list["metadata"]?["resourceVersion"] ?? "";
                var timeout = (int)Math.Max(1, _settings.ResyncInterval.TotalSeconds);
                var events = _options.Namespace.Length > 0
                    ? _client.CustomObjects.WatchListNamespacedCustomObjectAsync(
                        MicroVmResource.Group, MicroVmResource.Version, _options.Namespace, MicroVmSnapshotResource.Plural,
                        allowWatchBookmarks: true, labelSelector: selector, resourceVersion: rv, timeoutSeconds: timeout, cancellationToken: ct)
                    : _client.CustomObjects.WatchListCustomObjectForAllNamespacesAsync(
                        MicroVmResource.Group, MicroVmResource.Version, MicroVmSnapshotResource.Plural,
                        allowWatchBookmarks: true, labelSelector: selector, resourceVersion: rv, timeoutSeconds: timeout, cancellationToken: ct);
                await foreach (var (type, item) in events.WithCancellation(ct))
                {
                    if (type is WatchEventType.Bookmark or WatchEventType.Error)
                    {
                        continue;
                    }

                    var o = MicroVmApi.Parse(item);
                    Enqueue(MicroVmSnapshotResource.Namespace(o), MicroVmSnapshotResource.Name(o));
                }

                failures = 0;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                failures++;
                var delay = TimeSpan.FromMilliseconds(Math.Min(30_000, 250 * Math.Pow(2, Math.Min(failures, 7))));
                LogWatchFailed(selector, ex.Message, delay.TotalMilliseconds);
                try
                {
                    await Task.Delay(delay, _time, ct);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private void Enqueue(string ns, string name)
    {
        if (name.Length == 0)
        {
            return;
        }

        lock (_queued)
        {
            if (!_queued.Add((ns, name)))
            {
                return;
            }
        }

        _queue.Writer.TryWrite((ns, name));
    }

    private void Requeue((string Ns, string Name) key, TimeSpan after, CancellationToken ct)
    {
        if (after <= TimeSpan.Zero)
        {
            Enqueue(key.Ns, key.Name);
            return;
        }

        _ = Task.Delay(after, _time, ct).ContinueWith(
            t =>
            {
                if (!t.IsCanceled)
                {
                    Enqueue(key.Ns, key.Name);
                }
            },
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    [LoggerMessage(1180, LogLevel.Information, "{Namespace}/{Name}: MicroVMSnapshot of MicroVM {MicroVm} claimed by this node")]
    private partial void LogClaimed(string @namespace, string name, string microVm);

    [LoggerMessage(1181, LogLevel.Information, "{Namespace}/{Name}: MicroVMSnapshot of MicroVM {MicroVm} taken ({Bytes} bytes)")]
    private partial void LogTaken(string @namespace, string name, string microVm, long bytes);

    [LoggerMessage(1182, LogLevel.Warning, "{Namespace}/{Name}: MicroVMSnapshot failed: {Reason}: {Message}")]
    private partial void LogFailed(string @namespace, string name, string reason, string message);

    [LoggerMessage(1183, LogLevel.Information, "{Namespace}/{Name}: MicroVMSnapshot deleted with its files ({Bytes} bytes freed)")]
    private partial void LogDeleted(string @namespace, string name, long bytes);

    [LoggerMessage(1184, LogLevel.Information, "{Namespace}/{Name}: MicroVMSnapshot is {Phase} ({Reason}: {Message})")]
    private partial void LogPhase(string @namespace, string name, string phase, string reason, string message);

    [LoggerMessage(1185, LogLevel.Warning, "{Namespace}/{Name}: MicroVMSnapshot reconcile failed, retrying: {Message}")]
    private partial void LogReconcileFailed(string @namespace, string name, string message);

    [LoggerMessage(1186, LogLevel.Warning, "kubernetes: MicroVMSnapshot watch ({Selector}) failed: {Message}; again in {DelayMs:0} ms")]
    private partial void LogWatchFailed(string selector, string message, double delayMs);
}

using System.Globalization;
using System.Text.Json.Nodes;
using Hypercore.Store.Kubernetes.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Store.Kubernetes.NodeLifecycle;

/// <summary>
/// Kubernetes issue 13: a MicroVM whose node is gone would hang forever on delete, because only that node's daemon
/// removes the finalizer. The daemon holding the Lease (<see cref="LeaseElector"/>) looks at the Nodes every
/// <see cref="NodeLifecycleOptions.CheckInterval"/>; for a node that no longer exists, or whose Ready condition has
/// not been True for <see cref="NodeLifecycleOptions.NotReadyTimeout"/>, it sets <c>NodeLost=True</c> (and Ready
/// False, reason NodeLost) on each of its MicroVMs and removes their finalizer, so <c>kubectl delete</c> completes.
/// It lists only the MicroVMs of such nodes: a label selector excludes every healthy node.
/// </summary>
public sealed partial class NodeLifecycleController : BackgroundService
{
    public const string ConditionNodeLost = "NodeLost";

    private readonly KubernetesApiClient _client;
    private readonly LeaseElector _elector;
    private readonly NodeLifecycleOptions _options;
    private readonly KubernetesStoreOptions _store;
    private readonly TimeProvider _time;
    private readonly ILogger<NodeLifecycleController> _log;
    private bool _leading;
    private readonly PlacementController? _placement; // same Lease: one daemon of the cluster places and releases

    public NodeLifecycleController(
        KubernetesApiClient client, IOptions<NodeLifecycleOptions> options, IOptions<KubernetesStoreOptions> store, TimeProvider time, ILogger<NodeLifecycleController> log,
        PlacementOptions? placement = null)
    {
        _placement = placement is { Enabled: true } ? new PlacementController(client, placement, store.Value, time, log) : null;
        _client = client;
        _options = options.Value;
        _store = store.Value;
        _time = time;
        _log = log;
        _elector = new LeaseElector(client, _store.NodeName, _options, time);
    }

    /// <summary>Number of MicroVMs this controller released (for tests and metrics).</summary>
    public long Released => Interlocked.Read(ref _released);

    private long _released;
    private long _rescheduled;
    private long _events;

    /// <summary>Number of MicroVMs this controller moved off lost nodes (for tests and metrics).</summary>
    public long Rescheduled => Interlocked.Read(ref _rescheduled);

    /// <summary>Marks a MicroVM that stayed on a lost node (NodeLost=True), so the node's return is seen without a cluster-wide list.</summary>
    public const string NodeLostLabel = MicroVmResource.Group + "/node-lost";

    /// <summary>On a MicroVM moved off a lost node: the node it left.</summary>
    public const string RescheduledFromAnnotation = MicroVmResource.Group + "/rescheduled-from";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.Enabled)
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                LogFailed(ex.Message);
            }

            try
            {
                await Task.Delay(_options.CheckInterval, _time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One round: hold (or try for) the Lease; as the leader, release the MicroVMs of lost nodes.</summary>
    public async Task RunOnceAsync(CancellationToken ct)
    {
        var leading = await _elector.TryAcquireOrRenewAsync(ct);
        if (leading != _leading)
        {
            _leading = leading;
            LogLeadership(_store.NodeName, leading ? "now leads" : "no longer leads", _options.LeaseName);
        }

        if (leading)
        {
            await SweepAsync(ct);
            if (_placement is not null)
            {
                await _placement.RunAsync(ct);
            }
        }
    }

    private async Task SweepAsync(CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var nodes = (await _client.CoreV1.ListNodeAsync(cancellationToken: ct))["items"] as JsonArray ?? [];
        if (nodes.Count == 0)
        {
            // This daemon runs on a node, so an empty list is a wrong answer (or a wrong cluster), never "every node is gone".
            LogFailed("the API server listed no Node objects; no MicroVM is released");
            return;
        }

        var healthy = new List<string>();
        var notReady = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var node in nodes.OfType<JsonObject>())
        {
            var nodeName = (string?)node["metadata"]?["name"] ?? "";
            var ready = (node["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => (string?)c["type"] == "Ready");
            var since = KubernetesApiClient.ParseTime(ready?["lastTransitionTime"]);
            if (ready is not null && (string?)ready["status"] != "True" && since is { } s && now - s >= _options.NotReadyTimeout)
            {
                notReady[nodeName] = $"node \"{nodeName}\" has not been Ready since {s.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)} " +
                                     $"(longer than {_options.NotReadyTimeout.TotalSeconds:0} s): {(string?)ready["reason"]} {(string?)ready["message"]}".TrimEnd();
            }
            else
            {
                healthy.Add(nodeName);
            }
        }

        // Only MicroVMs labelled with a node that is not healthy: never the whole cluster.
        var label = MicroVmResource.NodeLabel;
        var selector = healthy.Count == 0 ? label : $"{label},{label} notin ({string.Join(",", healthy.Order(StringComparer.Ordinal))})";
        var body = _store.Namespace.Length > 0
            ? await _client.CustomObjects.ListNamespacedCustomObjectAsync(
                MicroVmResource.Group, MicroVmResource.Version, _store.Namespace, MicroVmResource.Plural, labelSelector: selector, cancellationToken: ct)
            : await _client.CustomObjects.ListCustomObjectForAllNamespacesAsync(
                MicroVmResource.Group, MicroVmResource.Version, MicroVmResource.Plural, labelSelector: selector, cancellationToken: ct);
        foreach (var item in (MicroVmApi.Parse(body)["items"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var node = (string?)item["metadata"]?["labels"]?[label] ?? "";
            var (reason, message) = notReady.TryGetValue(node, out var why)
                ? ("NodeNotReady", why)
                : ("NodeDeleted", $"node \"{node}\" no longer exists");
            try
            {
                var vm = (JsonObject)item.DeepClone();
                var deleting = item["metadata"]?["deletionTimestamp"] is not null;
                var stays = deleting ? null : WhyNotMoved(vm);
                if (!deleting && stays is null)
                {
                    await RescheduleAsync(vm, node, reason, message, now, ct);
                }
                else
                {
                    var kept = stays is null ? "" : "; " + stays;
                    await ReleaseAsync(vm, reason, message + kept + "; the MicroVM's finalizer was removed so it can be deleted", now, ct);
                }
            }
            catch (KubernetesApiException ex) when (ex.StatusCode is System.Net.HttpStatusCode.Conflict or System.Net.HttpStatusCode.NotFound)
            {
                // Changed or gone since the list: the next round sees the new version.
            }
        }

        await ClearReturnedAsync(new HashSet<string>(healthy, StringComparer.Ordinal), now, ct);
    }

    /// <summary>
    /// Null when a MicroVM of a lost node may boot on another node: restartPolicy Always (the user asked for it to
    /// run whatever happens) and no writable hostPath volume (such a disk is a file on the lost node; the same path
    /// on another node is another disk, so the VM would come up with other data). Read-only hostPath volumes, the
    /// kernel and initrd are taken to be provisioned alike on every Hypercore node; scratch disks and image volumes
    /// are made afresh by the new node. Otherwise the reason it stays.
    /// </summary>
    internal static string? WhyNotMoved(JsonObject vm)
    {
        var spec = vm["spec"] as JsonObject ?? new JsonObject();
        var policy = (string?)spec["restartPolicy"] ?? "Always";
        if (!string.Equals(policy, "Always", StringComparison.OrdinalIgnoreCase))
        {
            return $"restartPolicy {policy}: not rescheduled, it stays Failed";
        }

        var volumes = new List<JsonObject>();
        if (spec["rootVolume"] is JsonObject root)
        {
            volumes.Add(root);
        }

        volumes.AddRange((spec["additionalVolumes"] as JsonArray ?? []).OfType<JsonObject>());
        var local = volumes.FirstOrDefault(v => (string?)v["hostPath"] is { Length: > 0 } && (bool?)v["readOnly"] != true);
        return local is null
            ? null
            : $"volume \"{(string?)local["id"]}\" is the writable host file {(string?)local["hostPath"]} on the lost node: not rescheduled, it stays Failed";
    }

    /// <summary>
    /// Moves a MicroVM off a lost node, keeping the object (name, namespace, uid, spec): status first (NodeLost=True,
    /// Scheduled=False Rescheduling, phase Pending, nothing of the old node's process), so that the CRD rule lets
    /// spec.nodeName go; then the old reservation pod is deleted at once (its kubelet is gone and would never confirm
    /// a graceful delete); then spec.nodeName, the node label and the finalizer are removed. Placement then treats it
    /// as any unplaced MicroVM. Each step is idempotent, so a leader that dies halfway is finished by the next one.
    /// </summary>
    private async Task RescheduleAsync(JsonObject vm, string node, string reason, string message, DateTimeOffset now, CancellationToken ct)
    {
        // The lost node's daemon may still write (a NotReady node is not always cut off from the API server): a
        // conflict re-reads and goes on from where the object is.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await RescheduleOnceAsync(vm, node, reason, message, now, ct);
                return;
            }
            catch (KubernetesApiException ex) when (ex.StatusCode == System.Net.HttpStatusCode.Conflict && attempt < 5)
            {
                var meta = vm["metadata"]!;
                var fresh = MicroVmApi.Parse(await _client.CustomObjects.GetNamespacedCustomObjectAsync(
                    MicroVmResource.Group, MicroVmResource.Version, (string?)meta["namespace"] ?? "default", MicroVmResource.Plural, (string)meta["name"]!,
                    cancellationToken: ct));
                if ((string?)fresh["metadata"]?["labels"]?[MicroVmResource.NodeLabel] != node || fresh["metadata"]?["deletionTimestamp"] is not null)
                {
                    return; // moved or being deleted meanwhile
                }

                vm = fresh;
            }
        }
    }

    private async Task RescheduleOnceAsync(JsonObject vm, string node, string reason, string message, DateTimeOffset now, CancellationToken ct)
    {
        var meta = vm["metadata"]!.AsObject();
        var name = (string)meta["name"]!;
        var ns = (string?)meta["namespace"] ?? "default";
        vm["apiVersion"] ??= MicroVmResource.ApiVersion;
        vm["kind"] ??= MicroVmResource.Kind;
        var why = $"{message}; restartPolicy Always: rescheduling it on another node";
        var old = vm["status"] as JsonObject ?? new JsonObject();
        var conditions = (old["conditions"] as JsonArray ?? []).OfType<JsonObject>().ToList();
        if (!conditions.Any(c => (string?)c["type"] == ConditionNodeLost && (string?)c["status"] == "True"))
        {
            var stamp = now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            var generation = (long?)meta["generation"] ?? 1;
            var kept = conditions.Where(c => (string?)c["type"] is not (ConditionNodeLost or "Ready" or PlacementController.ConditionScheduled)).Select(c => c.DeepClone()).ToList();
            kept.Add(Condition(ConditionNodeLost, "True", reason, why, stamp, generation));
            kept.Add(Condition("Ready", "False", ConditionNodeLost, why, stamp, generation));
            kept.Add(Condition(PlacementController.ConditionScheduled, "False", "Rescheduling",
                $"node \"{node}\" was lost; waiting for kube-scheduler to place the reservation pod again", stamp, generation));

            // Nothing of the old node's instance is kept: its pid, addresses and files are on the lost node.
            vm["status"] = new JsonObject
            {
                ["phase"] = "Pending",
                ["observedGeneration"] = (long?)old["observedGeneration"] ?? 0,
                ["restartCount"] = (int?)old["restartCount"] ?? 0,
                ["conditions"] = new JsonArray(kept.OrderBy(c => (string?)c!["type"], StringComparer.Ordinal).ToArray()),
            };
            vm = MicroVmApi.Parse(await _client.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync(
                vm, MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural, name, cancellationToken: ct));
            LogNodeLost(ns, name, reason, why);
        }

        try
        {
            await _client.CoreV1.DeleteNamespacedPodAsync(PlacementController.PodName(name), ns,
                new JsonObject { ["gracePeriodSeconds"] = 0 }, cancellationToken: ct);
        }
        catch (KubernetesApiException ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
        }

        meta = vm["metadata"]!.AsObject();
        (vm["spec"] as JsonObject)?.Remove("nodeName");
        var labels = meta["labels"] as JsonObject ?? new JsonObject();
        labels.Remove(MicroVmResource.NodeLabel);
        labels[MicroVmResource.MovedFromLabel] = node; // the node, back, removes what it has left for it (IMovedAwayLookup)
        meta["labels"] = labels;
        var annotations = meta["annotations"] as JsonObject ?? new JsonObject();
        annotations[RescheduledFromAnnotation] = node;
        meta["annotations"] = annotations;
        if (meta["finalizers"] is JsonArray finalizers)
        {
            meta["finalizers"] = new JsonArray(finalizers.Where(f => (string?)f != MicroVmResource.Finalizer).Select(f => f!.DeepClone()).ToArray());
        }

        vm.Remove("status");
        await _client.CustomObjects.ReplaceNamespacedCustomObjectAsync(
            vm, MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural, name, cancellationToken: ct);
        Interlocked.Increment(ref _rescheduled);
        LogRescheduled(ns, name, node);
        await RecordEventAsync(vm, "Warning", "Rescheduled", why, now, ct);
    }

    private async Task ReleaseAsync(JsonObject vm, string reason, string message, DateTimeOffset now, CancellationToken ct)
    {
        var meta = vm["metadata"]!.AsObject();
        var name = (string)meta["name"]!;
        var ns = (string?)meta["namespace"] ?? "default";
        var deleting = meta["deletionTimestamp"] is not null;
        vm["apiVersion"] ??= MicroVmResource.ApiVersion;
        vm["kind"] ??= MicroVmResource.Kind;
        var status = vm["status"] as JsonObject ?? new JsonObject();
        vm["status"] = status;
        var conditions = status["conditions"] as JsonArray ?? [];
        if (!conditions.OfType<JsonObject>().Any(c => (string?)c["type"] == ConditionNodeLost && (string?)c["status"] == "True"))
        {
            var stamp = now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            var generation = (long?)meta["generation"] ?? 1;
            var kept = conditions.OfType<JsonObject>().Where(c => (string?)c["type"] is not (ConditionNodeLost or "Ready")).Select(c => c.DeepClone()).ToList();
            kept.Add(Condition(ConditionNodeLost, "True", reason, message, stamp, generation));
            kept.Add(Condition("Ready", "False", ConditionNodeLost, message, stamp, generation));
            status["conditions"] = new JsonArray(kept.OrderBy(c => (string?)c!["type"], StringComparer.Ordinal).ToArray());
            if (!deleting)
            {
                // Failed for this generation: the node's daemon, back, leaves it down (Ready reason NodeLost ends it
                // as a crash does) until a new start request bumps the generation.
                status["phase"] = "Failed";
                status["observedGeneration"] = generation;
                status.Remove("pid");
            }

            vm = MicroVmApi.Parse(await _client.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync(
                vm, MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural, name, cancellationToken: ct));
            LogNodeLost(ns, name, reason, message);
            if (!deleting)
            {
                await RecordEventAsync(vm, "Warning", ConditionNodeLost, message, now, ct);
            }
        }

        var labels = vm["metadata"]!["labels"] as JsonObject;
        var mark = !deleting && (string?)labels?[NodeLostLabel] != "true";
        var held = MicroVmResource.HasFinalizer(vm);
        if (held || mark)
        {
            var finalizers = new JsonArray(((vm["metadata"]!["finalizers"] as JsonArray) ?? []).Where(f => (string?)f != MicroVmResource.Finalizer).Select(f => f!.DeepClone()).ToArray());
            vm["metadata"]!["finalizers"] = finalizers;
            if (mark)
            {
                labels ??= new JsonObject();
                labels[NodeLostLabel] = "true"; // found again when its node is back (ClearReturnedAsync)
                vm["metadata"]!["labels"] = labels;
            }

            vm.Remove("status");
            await _client.CustomObjects.ReplaceNamespacedCustomObjectAsync(
                vm, MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural, name, cancellationToken: ct);
            if (held)
            {
                Interlocked.Increment(ref _released);
                LogReleased(ns, name);
            }
        }
    }

    /// <summary>
    /// A node that is healthy again: its MicroVMs marked NodeLost (the ones that stayed) get <c>NodeLost=False</c>,
    /// reason NodeReturned, and lose the mark. Their phase stays what it is: a Failed one stays down (restartPolicy),
    /// one whose hypervisor outlived the outage is reported Running again by the node's daemon, which also claims it
    /// again. MicroVMs that were moved no longer name the node, so the node never sees them.
    /// </summary>
    private async Task ClearReturnedAsync(HashSet<string> healthy, DateTimeOffset now, CancellationToken ct)
    {
        var body = _store.Namespace.Length > 0
            ? await _client.CustomObjects.ListNamespacedCustomObjectAsync(
                MicroVmResource.Group, MicroVmResource.Version, _store.Namespace, MicroVmResource.Plural, labelSelector: NodeLostLabel, cancellationToken: ct)
            : await _client.CustomObjects.ListCustomObjectForAllNamespacesAsync(
                MicroVmResource.Group, MicroVmResource.Version, MicroVmResource.Plural, labelSelector: NodeLostLabel, cancellationToken: ct);
        foreach (var item in (MicroVmApi.Parse(body)["items"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var node = (string?)item["metadata"]?["labels"]?[MicroVmResource.NodeLabel] ?? "";
            if (!healthy.Contains(node))
            {
                continue;
            }

            try
            {
                await ClearAsync((JsonObject)item.DeepClone(), node, now, ct);
            }
            catch (KubernetesApiException ex) when (ex.StatusCode is System.Net.HttpStatusCode.Conflict or System.Net.HttpStatusCode.NotFound)
            {
            }
        }
    }

    private async Task ClearAsync(JsonObject vm, string node, DateTimeOffset now, CancellationToken ct)
    {
        var meta = vm["metadata"]!.AsObject();
        var name = (string)meta["name"]!;
        var ns = (string?)meta["namespace"] ?? "default";
        vm["apiVersion"] ??= MicroVmResource.ApiVersion;
        vm["kind"] ??= MicroVmResource.Kind;
        var status = (vm["status"] as JsonObject)?.DeepClone().AsObject() ?? new JsonObject();

        // The mark first, the condition second: both writes then find NodeLost=True on the stored object, which is
        // what the node-scope admission policy lets the Lease holder (a daemon of another node) write under.
        (meta["labels"] as JsonObject)?.Remove(NodeLostLabel);
        vm.Remove("status");
        vm = MicroVmApi.Parse(await _client.CustomObjects.ReplaceNamespacedCustomObjectAsync(
            vm, MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural, name, cancellationToken: ct));
        var conditions = (status["conditions"] as JsonArray ?? []).OfType<JsonObject>().ToList();
        if (conditions.Any(c => (string?)c["type"] == ConditionNodeLost && (string?)c["status"] == "True"))
        {
            var stamp = now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            var kept = conditions.Where(c => (string?)c["type"] != ConditionNodeLost).Select(c => c.DeepClone()).ToList();
            kept.Add(Condition(ConditionNodeLost, "False", "NodeReturned", $"node \"{node}\" is Ready again", stamp, (long?)vm["metadata"]?["generation"] ?? 1));
            status["conditions"] = new JsonArray(kept.OrderBy(c => (string?)c!["type"], StringComparer.Ordinal).ToArray());
            vm["status"] = status;
            await _client.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync(
                vm, MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural, name, cancellationToken: ct);
            await RecordEventAsync(vm, "Normal", "NodeReturned", $"node \"{node}\" is Ready again", now, ct);
        }

        LogReturned(ns, name, node);
    }

    private static JsonObject Condition(string type, string status, string reason, string message, string stamp, long generation) => new()
    {
        ["type"] = type, ["status"] = status, ["reason"] = reason, ["message"] = message, ["lastTransitionTime"] = stamp, ["observedGeneration"] = generation,
    };

    /// <summary>A core/v1 Event on the MicroVM (kubectl describe shows it); best effort, as the daemon's recorder.</summary>
    private async Task RecordEventAsync(JsonObject vm, string type, string reason, string message, DateTimeOffset now, CancellationToken ct)
    {
        var meta = vm["metadata"]!;
        var ns = (string?)meta["namespace"] ?? "default";
        try
        {
            await _client.CoreV1.CreateNamespacedEventAsync(new JsonObject
            {
                ["apiVersion"] = "v1",
                ["kind"] = "Event",
                ["metadata"] = new JsonObject { ["name"] = $"{(string?)meta["name"]}.{now.ToUnixTimeMilliseconds():x}{Interlocked.Increment(ref _events):x}", ["namespace"] = ns },
                ["involvedObject"] = new JsonObject
                {
                    ["apiVersion"] = MicroVmResource.ApiVersion, ["kind"] = MicroVmResource.Kind, ["name"] = (string?)meta["name"], ["namespace"] = ns, ["uid"] = (string?)meta["uid"],
                },
                ["type"] = type, ["reason"] = reason, ["message"] = message, ["count"] = 1,
                ["firstTimestamp"] = KubernetesApiClient.FormatTime(now), ["lastTimestamp"] = KubernetesApiClient.FormatTime(now),
                ["source"] = new JsonObject { ["component"] = "hypercore-node-lifecycle", ["host"] = _store.NodeName },
                ["reportingComponent"] = "hypercore-node-lifecycle", ["reportingInstance"] = _store.NodeName,
            }, ns, cancellationToken: ct);
        }
        catch (Exception ex) when (ex is KubernetesApiException or HttpRequestException)
        {
            LogFailed($"event {reason} for {ns}/{(string?)meta["name"]}: {ex.Message}");
        }
    }

    [LoggerMessage(1420, LogLevel.Information, "node lifecycle: {Node} {What} the Lease {Lease}")]
    private partial void LogLeadership(string node, string what, string lease);

    [LoggerMessage(1421, LogLevel.Warning, "{Namespace}/{Name}: {Reason}: {Message}")]
    private partial void LogNodeLost(string @namespace, string name, string reason, string message);

    [LoggerMessage(1422, LogLevel.Information, "{Namespace}/{Name}: finalizer removed (its node is lost)")]
    private partial void LogReleased(string @namespace, string name);

    [LoggerMessage(1423, LogLevel.Warning, "node lifecycle: round failed: {Message}")]
    private partial void LogFailed(string message);

    [LoggerMessage(1427, LogLevel.Warning, "{Namespace}/{Name}: moved off lost node {Node}; placement finds it a new node")]
    private partial void LogRescheduled(string @namespace, string name, string node);

    [LoggerMessage(1428, LogLevel.Information, "{Namespace}/{Name}: node {Node} is back; NodeLost cleared")]
    private partial void LogReturned(string @namespace, string name, string node);
}

public static class NodeLifecycleServiceCollectionExtensions
{
    /// <summary>Adds the node lifecycle controller (Kubernetes mode only; needs <see cref="KubernetesStoreOptions"/>).</summary>
    public static IServiceCollection AddNodeLifecycleController(this IServiceCollection services, Action<NodeLifecycleOptions>? configure = null)
    {
        var builder = services.AddOptions<NodeLifecycleOptions>();
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        builder.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<NodeLifecycleOptions>, NodeLifecycleOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<PlacementOptions>();
        services.TryAddSingleton(sp => new NodeLifecycleController(
            new KubernetesApiClient(KubernetesConfig.Build(sp.GetRequiredService<IOptions<KubernetesStoreOptions>>().Value)),
            sp.GetRequiredService<IOptions<NodeLifecycleOptions>>(), sp.GetRequiredService<IOptions<KubernetesStoreOptions>>(),
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<NodeLifecycleController>>(),
            sp.GetRequiredService<IOptions<PlacementOptions>>().Value));
        services.AddHostedService(sp => sp.GetRequiredService<NodeLifecycleController>());
        return services;
    }
}

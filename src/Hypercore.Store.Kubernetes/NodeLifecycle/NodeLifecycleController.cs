using System.Globalization;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;
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

    private readonly IKubernetes _client;
    private readonly LeaseElector _elector;
    private readonly NodeLifecycleOptions _options;
    private readonly KubernetesStoreOptions _store;
    private readonly TimeProvider _time;
    private readonly ILogger<NodeLifecycleController> _log;
    private bool _leading;
    private readonly PlacementController? _placement; // same Lease: one daemon of the cluster places and releases

    public NodeLifecycleController(
        IKubernetes client, IOptions<NodeLifecycleOptions> options, IOptions<KubernetesStoreOptions> store, TimeProvider time, ILogger<NodeLifecycleController> log,
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
        var nodes = await _client.CoreV1.ListNodeAsync(cancellationToken: ct);
        if (nodes.Items.Count == 0)
        {
            // This daemon runs on a node, so an empty list is a wrong answer (or a wrong cluster), never "every node is gone".
            LogFailed("the API server listed no Node objects; no MicroVM is released");
            return;
        }

        var healthy = new List<string>();
        var notReady = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var node in nodes.Items)
        {
            var ready = node.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready");
            var since = ready?.LastTransitionTime is { } t ? new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)) : (DateTimeOffset?)null;
            if (ready is not null && ready.Status != "True" && since is { } s && now - s >= _options.NotReadyTimeout)
            {
                notReady[node.Metadata.Name] = $"node \"{node.Metadata.Name}\" has not been Ready since {s.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)} " +
                                               $"(longer than {_options.NotReadyTimeout.TotalSeconds:0} s): {ready.Reason} {ready.Message}".TrimEnd();
            }
            else
            {
                healthy.Add(node.Metadata.Name);
            }
        }

        // Only MicroVMs labelled with a node that is not healthy: never the whole cluster.
        var label = MicroVmResource.NodeLabel;
        var selector = healthy.Count == 0 ? label : $"{label},{label} notin ({string.Join(",", healthy.Order(StringComparer.Ordinal))})";
        var body = _store.Namespace.Length > 0
            ? (await _client.CustomObjects.ListNamespacedCustomObjectWithHttpMessagesAsync(
                MicroVmResource.Group, MicroVmResource.Version, _store.Namespace, MicroVmResource.Plural, labelSelector: selector, cancellationToken: ct)).Body
            : (await _client.CustomObjects.ListCustomObjectForAllNamespacesWithHttpMessagesAsync(
                MicroVmResource.Group, MicroVmResource.Version, MicroVmResource.Plural, labelSelector: selector, cancellationToken: ct)).Body;
        foreach (var item in (MicroVmApi.Parse(body)["items"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var node = (string?)item["metadata"]?["labels"]?[label] ?? "";
            var (reason, message) = notReady.TryGetValue(node, out var why)
                ? ("NodeNotReady", why)
                : ("NodeDeleted", $"node \"{node}\" no longer exists");
            try
            {
                await ReleaseAsync((JsonObject)item.DeepClone(), reason, message + "; the MicroVM's finalizer was removed so it can be deleted", now, ct);
            }
            catch (HttpOperationException ex) when (ex.Response.StatusCode is System.Net.HttpStatusCode.Conflict or System.Net.HttpStatusCode.NotFound)
            {
                // Changed or gone since the list: the next round sees the new version.
            }
        }
    }

    private async Task ReleaseAsync(JsonObject vm, string reason, string message, DateTimeOffset now, CancellationToken ct)
    {
        var meta = vm["metadata"]!.AsObject();
        var name = (string)meta["name"]!;
        var ns = (string?)meta["namespace"] ?? "default";
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
            kept.Add(new JsonObject { ["type"] = ConditionNodeLost, ["status"] = "True", ["reason"] = reason, ["message"] = message, ["lastTransitionTime"] = stamp, ["observedGeneration"] = generation });
            kept.Add(new JsonObject { ["type"] = "Ready", ["status"] = "False", ["reason"] = ConditionNodeLost, ["message"] = message, ["lastTransitionTime"] = stamp, ["observedGeneration"] = generation });
            status["conditions"] = new JsonArray(kept.OrderBy(c => (string?)c!["type"], StringComparer.Ordinal).ToArray());
            vm = MicroVmApi.Parse((await _client.CustomObjects.ReplaceNamespacedCustomObjectStatusWithHttpMessagesAsync(
                vm, MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural, name, cancellationToken: ct)).Body);
            LogNodeLost(ns, name, reason, message);
        }

        if (MicroVmResource.HasFinalizer(vm))
        {
            var finalizers = new JsonArray(((JsonArray)vm["metadata"]!["finalizers"]!).Where(f => (string?)f != MicroVmResource.Finalizer).Select(f => f!.DeepClone()).ToArray());
            vm["metadata"]!["finalizers"] = finalizers;
            await _client.CustomObjects.ReplaceNamespacedCustomObjectWithHttpMessagesAsync(
                vm, MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural, name, cancellationToken: ct);
            Interlocked.Increment(ref _released);
            LogReleased(ns, name);
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
            new k8s.Kubernetes(KubernetesConfig.Build(sp.GetRequiredService<IOptions<KubernetesStoreOptions>>().Value)),
            sp.GetRequiredService<IOptions<NodeLifecycleOptions>>(), sp.GetRequiredService<IOptions<KubernetesStoreOptions>>(),
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<NodeLifecycleController>>(),
            sp.GetRequiredService<IOptions<PlacementOptions>>().Value));
        services.AddHostedService(sp => sp.GetRequiredService<NodeLifecycleController>());
        return services;
    }
}

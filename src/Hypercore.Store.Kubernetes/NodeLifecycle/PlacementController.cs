using System.Globalization;
using System.Text.Json.Nodes;
using Hypercore.Store.Kubernetes.Client;
using Hypercore.Store.Kubernetes.Snapshots;
using Microsoft.Extensions.Logging;

namespace Hypercore.Store.Kubernetes.NodeLifecycle;

/// <summary>
/// Kubernetes issue 13, placement by kube-scheduler: for each MicroVM without a node (no spec.nodeName, no node
/// label) the Lease holder creates a reservation Pod (owner: the MicroVM; requests cpu = vcpu and memory =
/// memoryInMb + overhead; spec.placement's nodeSelector, tolerations, affinity and priorityClassName; the label that
/// marks Hypercore nodes; a pause image). kube-scheduler binds it; then the MicroVM gets spec.nodeName and the node
/// label, and that node's daemon runs it, with its memory reserved against the node's pods. A Pod the scheduler
/// marks Unschedulable gives the MicroVM <c>Scheduled=False</c> with the scheduler's own message.
/// </summary>
public sealed partial class PlacementController
{
    public const string ConditionScheduled = "Scheduled";
    public const string MicroVmLabel = MicroVmResource.Group + "/microvm";
    public const string ReasonSnapshotNotFound = "SnapshotNotFound";
    public const string ReasonSnapshotNotReady = "SnapshotNotReady";

    private readonly KubernetesApiClient _client;
    private readonly PlacementOptions _options;
    private readonly KubernetesStoreOptions _store;
    private readonly TimeProvider _time;
    private readonly ILogger _log;

    public PlacementController(KubernetesApiClient client, PlacementOptions options, KubernetesStoreOptions store, TimeProvider time, ILogger log)
    {
        _client = client;
        _options = options;
        _store = store;
        _time = time;
        _log = log;
    }

    public static string PodName(string microVm) => "mvm-" + microVm;

    /// <summary>One pass over the unplaced MicroVMs.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var selector = "!" + MicroVmResource.NodeLabel; // only MicroVMs no node has
        var body = _store.Namespace.Length > 0
            ? await _client.CustomObjects.ListNamespacedCustomObjectAsync(
                MicroVmResource.Group, MicroVmResource.Version, _store.Namespace, MicroVmResource.Plural, labelSelector: selector, cancellationToken: ct)
            : await _client.CustomObjects.ListCustomObjectForAllNamespacesAsync(
                MicroVmResource.Group, MicroVmResource.Version, MicroVmResource.Plural, labelSelector: selector, cancellationToken: ct);
        foreach (var vm in (MicroVmApi.Parse(body)["items"] as JsonArray ?? []).OfType<JsonObject>())
        {
            if (vm["metadata"]?["deletionTimestamp"] is not null)
            {
                continue;
            }

            try
            {
                await PlaceAsync((JsonObject)vm.DeepClone(), ct);
            }
            catch (KubernetesApiException ex) when (ex.StatusCode is System.Net.HttpStatusCode.Conflict or System.Net.HttpStatusCode.NotFound)
            {
                // Changed meanwhile: the next pass sees the new version.
            }
        }
    }

    private async Task PlaceAsync(JsonObject vm, CancellationToken ct)
    {
        var meta = vm["metadata"]!.AsObject();
        var name = (string)meta["name"]!;
        var ns = (string?)meta["namespace"] ?? "default";
        vm["apiVersion"] ??= MicroVmResource.ApiVersion;
        vm["kind"] ??= MicroVmResource.Kind;
        if ((string?)vm["spec"]?["nodeName"] is { Length: > 0 } named)
        {
            await RecordNodeAsync(vm, ns, name, named, ct); // placed by hand without the label: only the label is missing
            return;
        }

        JsonObject? pod;
        try
        {
            pod = await _client.CoreV1.ReadNamespacedPodAsync(PodName(name), ns, cancellationToken: ct);
        }
        catch (KubernetesApiException ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            pod = null;
        }

        if (pod is not null && (pod["metadata"]?["ownerReferences"] as JsonArray)?.Any(o => (string?)o?["uid"] == (string?)meta["uid"]) != true)
        {
            // A leftover of an earlier MicroVM of the same name (garbage collection had not come by yet): it reserves
            // nothing for this one, and its node must not be taken for this one's.
            await _client.CoreV1.DeleteNamespacedPodAsync((string)pod["metadata"]!["name"]!, ns, new JsonObject { ["gracePeriodSeconds"] = 0 }, cancellationToken: ct);
            return;
        }

        if (pod is null)
        {
            string? snapshotNode = null;
            if ((string?)vm["spec"]?["restoreFrom"] is { Length: > 0 } snapshot)
            {
                // A snapshot's files are on the node that took it: the VM can start from it there only.
                (snapshotNode, var waitReason, var waitMessage) = await SnapshotNodeAsync(ns, snapshot, ct);
                if (snapshotNode is null)
                {
                    await SetScheduledAsync(vm, ns, name, "False", waitReason!, waitMessage!, ct);
                    return;
                }
            }

            await _client.CoreV1.CreateNamespacedPodAsync(ReservationPod(vm, ns, name, snapshotNode), ns, cancellationToken: ct);
            LogReservationCreated(ns, name);
            return;
        }

        if ((string?)pod["spec"]?["nodeName"] is { Length: > 0 } node)
        {
            await RecordNodeAsync(vm, ns, name, node, ct);
            LogPlaced(ns, name, node);
            return;
        }

        var scheduled = (pod["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => (string?)c["type"] == "PodScheduled");
        if (scheduled is not null && (string?)scheduled["status"] == "False")
        {
            await SetScheduledAsync(vm, ns, name, "False", (string?)scheduled["reason"] ?? "Unschedulable",
                $"kube-scheduler: {(string?)scheduled["message"]} (reservation pod {ns}/{PodName(name)})", ct);
        }
    }

    /// <summary>
    /// The node holding the MicroVMSnapshot's files once it is Ready; else why the MicroVM waits (placed anywhere else it
    /// would only fail with SnapshotNotFound). A name that is not a MicroVMSnapshot may be a snapshot taken with `vis` on
    /// some node, which only the user knows: the message says to name that node.
    /// </summary>
    private async Task<(string? Node, string? Reason, string? Message)> SnapshotNodeAsync(string ns, string snapshot, CancellationToken ct)
    {
        JsonObject? snap;
        try
        {
            snap = await _client.CustomObjects.GetNamespacedCustomObjectAsync(
                MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmSnapshotResource.Plural, snapshot, ct) as JsonObject;
        }
        catch (KubernetesApiException ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            snap = null;
        }

        if (snap is null)
        {
            return (null, ReasonSnapshotNotFound,
                $"spec.restoreFrom: no MicroVMSnapshot \"{snapshot}\" in namespace \"{ns}\", so no node is known to hold its files; " +
                "create the MicroVMSnapshot, or for a snapshot taken with `vis snapshot create` set spec.nodeName to the node that took it");
        }

        var phase = (string?)snap["status"]?["phase"];
        var node = (string?)snap["status"]?["node"];
        if (phase == MicroVmSnapshotResource.PhaseReady && node is { Length: > 0 })
        {
            return (node, null, null);
        }

        return (null, ReasonSnapshotNotReady,
            $"spec.restoreFrom: MicroVMSnapshot \"{snapshot}\" is {(phase is { Length: > 0 } ? phase : "Pending")}, not Ready; " +
            "placed once it is Ready, on the node that holds its files (`kubectl get mvmsnap` says why)");
    }

    private JsonObject ReservationPod(JsonObject vm, string ns, string name, string? snapshotNode)
    {
        var spec = vm["spec"] as JsonObject ?? new JsonObject();
        var placement = spec["placement"] as JsonObject;
        var vcpu = (int?)spec["vcpu"] ?? 1;
        var memory = ((long?)spec["memoryInMb"] ?? 128) + _options.VmMemoryOverheadMb;
        JsonObject Quantities() => new()
        {
            ["cpu"] = vcpu.ToString(CultureInfo.InvariantCulture),
            ["memory"] = MebibytesQuantity(memory),
        };
        var nodeSelector = new JsonObject();
        if (_options.NodeSelectorLabel.Split('=', 2) is [var key, var value] && key.Length > 0)
        {
            nodeSelector[key] = value;
        }

        foreach (var (k, v) in placement?["nodeSelector"] as JsonObject ?? [])
        {
            nodeSelector[k] = (string?)v ?? "";
        }

        var podSpec = new JsonObject
        {
            ["containers"] = new JsonArray(new JsonObject
            {
                ["name"] = "reservation",
                ["image"] = _options.PauseImage,
                ["resources"] = new JsonObject { ["limits"] = Quantities(), ["requests"] = Quantities() },
            }),
            ["nodeSelector"] = nodeSelector,
            ["restartPolicy"] = "Always",
            ["automountServiceAccountToken"] = false,
            ["terminationGracePeriodSeconds"] = 0,
        };

        // Copied as the MicroVM's spec.placement has them (the CRD's schema checked their shape).
        if (placement?["tolerations"] is JsonArray tolerations)
        {
            podSpec["tolerations"] = tolerations.DeepClone();
        }

        if (placement?["affinity"] is JsonObject affinity)
        {
            podSpec["affinity"] = affinity.DeepClone();
        }

        if (snapshotNode is not null)
        {
            podSpec["affinity"] = PinnedToNode(podSpec["affinity"] as JsonObject ?? new JsonObject(), snapshotNode);
        }

        if ((string?)placement?["priorityClassName"] is { } priorityClass)
        {
            podSpec["priorityClassName"] = priorityClass;
        }

        return new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Pod",
            ["metadata"] = new JsonObject
            {
                ["name"] = PodName(name),
                ["namespace"] = ns,
                ["labels"] = new JsonObject { [MicroVmLabel] = name, ["app.kubernetes.io/part-of"] = "hypercore" },
                ["ownerReferences"] = new JsonArray(new JsonObject
                {
                    ["apiVersion"] = MicroVmResource.ApiVersion, ["kind"] = MicroVmResource.Kind, ["name"] = name,
                    ["uid"] = (string)vm["metadata"]!["uid"]!, ["controller"] = true, ["blockOwnerDeletion"] = false,
                }),
            },
            ["spec"] = podSpec,
        };
    }

    /// <summary>
    /// The affinity with the node required by name (matchFields metadata.name, which does not depend on node labels),
    /// added to every required term the user gave (terms are ORed, expressions inside a term ANDed), so kube-scheduler
    /// still checks the node's capacity and the user's own rules.
    /// </summary>
    internal static JsonObject PinnedToNode(JsonObject affinity, string node)
    {
        var nodeAffinity = affinity["nodeAffinity"] as JsonObject ?? new JsonObject();
        affinity["nodeAffinity"] = nodeAffinity;
        var required = nodeAffinity["requiredDuringSchedulingIgnoredDuringExecution"] as JsonObject ?? new JsonObject();
        nodeAffinity["requiredDuringSchedulingIgnoredDuringExecution"] = required;
        var terms = required["nodeSelectorTerms"] as JsonArray;
        if (terms is null || terms.Count == 0)
        {
            terms = new JsonArray(new JsonObject()); // not [..]: that calls the generic Add<T>, which is not trim-safe
            required["nodeSelectorTerms"] = terms;
        }

        foreach (var term in terms.OfType<JsonObject>())
        {
            var fields = term["matchFields"] as JsonArray ?? [];
            fields.Add((JsonNode)new JsonObject { ["key"] = "metadata.name", ["operator"] = "In", ["values"] = new JsonArray(node) });
            term["matchFields"] = fields;
        }

        return affinity;
    }

    /// <summary>A quantity in its canonical form (1024Mi is 1Gi), as the API server stores it and KubernetesClient wrote it.</summary>
    internal static string MebibytesQuantity(long mebibytes)
    {
        string[] units = ["Mi", "Gi", "Ti", "Pi", "Ei"];
        var unit = 0;
        while (mebibytes != 0 && mebibytes % 1024 == 0 && unit < units.Length - 1)
        {
            mebibytes /= 1024;
            unit++;
        }

        return mebibytes == 0 ? "0" : mebibytes.ToString(CultureInfo.InvariantCulture) + units[unit];
    }

    private async Task RecordNodeAsync(JsonObject vm, string ns, string name, string node, CancellationToken ct)
    {
        // Status first, while the MicroVM names no node: the node-scope admission policy lets the Lease holder (a
        // daemon of any node) write a MicroVM without a node, not one of another node. Should the spec write below
        // fail, the next pass finds the pod bound and the MicroVM still unplaced, and does both again.
        var written = await SetScheduledAsync(vm, ns, name, "True", "Scheduled", $"kube-scheduler bound the reservation pod to node \"{node}\"", ct) ?? vm;
        written["apiVersion"] ??= MicroVmResource.ApiVersion;
        written["kind"] ??= MicroVmResource.Kind;
        written["spec"]!["nodeName"] = node;
        var labels = written["metadata"]!["labels"] as JsonObject ?? new JsonObject();
        labels[MicroVmResource.NodeLabel] = node;
        written["metadata"]!["labels"] = labels;
        written.Remove("status");
        await _client.CustomObjects.ReplaceNamespacedCustomObjectAsync(
            written, MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural, name, cancellationToken: ct);
    }

    /// <summary>Writes the Scheduled condition; returns the object written, or null when it already said so.</summary>
    private async Task<JsonObject?> SetScheduledAsync(JsonObject vm, string ns, string name, string value, string reason, string message, CancellationToken ct)
    {
        var status = vm["status"] as JsonObject ?? new JsonObject();
        var conditions = (status["conditions"] as JsonArray ?? []).OfType<JsonObject>().ToList();
        var existing = conditions.FirstOrDefault(c => (string?)c["type"] == ConditionScheduled);
        if (existing is not null && (string?)existing["status"] == value && (string?)existing["message"] == message)
        {
            return null;
        }

        var stamp = _time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        var kept = conditions.Where(c => (string?)c["type"] != ConditionScheduled).Select(c => c.DeepClone()).ToList();
        if (value == "True" && kept.OfType<JsonObject>().FirstOrDefault(c => (string?)c["type"] == NodeLifecycleController.ConditionNodeLost && (string?)c["status"] == "True") is { } lost)
        {
            // Moved off a lost node (NodeLifecycleController.RescheduleAsync) and now placed: no longer lost.
            var from = (string?)vm["metadata"]?["annotations"]?[NodeLifecycleController.RescheduledFromAnnotation] ?? "its node";
            kept.Remove(lost);
            kept.Add(new JsonObject
            {
                ["type"] = NodeLifecycleController.ConditionNodeLost, ["status"] = "False", ["reason"] = "Rescheduled",
                ["message"] = $"moved off lost node \"{from}\" ({(string?)lost["reason"]}); {message}",
                ["lastTransitionTime"] = stamp, ["observedGeneration"] = (long?)vm["metadata"]?["generation"] ?? 1,
            });
        }

        kept.Add(new JsonObject
        {
            ["type"] = ConditionScheduled, ["status"] = value, ["reason"] = reason, ["message"] = message,
            ["lastTransitionTime"] = existing is not null && (string?)existing["status"] == value ? existing["lastTransitionTime"]!.DeepClone() : stamp,
            ["observedGeneration"] = (long?)vm["metadata"]?["generation"] ?? 1,
        });
        status["conditions"] = new JsonArray(kept.OrderBy(c => (string?)c!["type"], StringComparer.Ordinal).ToArray());
        status["phase"] ??= "Pending";
        vm["status"] = status;
        var written = MicroVmApi.Parse(await _client.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync(
            vm, MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural, name, cancellationToken: ct));
        if (value == "False")
        {
            LogUnschedulable(ns, name, message);
        }

        return written;
    }

    [LoggerMessage(1424, LogLevel.Information, "placement: {Namespace}/{Name}: reservation pod created")]
    private partial void LogReservationCreated(string @namespace, string name);

    [LoggerMessage(1425, LogLevel.Information, "placement: {Namespace}/{Name}: placed on node {Node}")]
    private partial void LogPlaced(string @namespace, string name, string node);

    [LoggerMessage(1426, LogLevel.Warning, "placement: {Namespace}/{Name}: not scheduled: {Message}")]
    private partial void LogUnschedulable(string @namespace, string name, string message);
}

/// <summary>Placement settings (section "Placement").</summary>
public sealed class PlacementOptions
{
    public const string Section = "Placement";

    /// <summary>Whether the Lease holder places MicroVMs without a node. Default true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Image of the reservation pod's only container. Default registry.k8s.io/pause:3.10.</summary>
    public string PauseImage { get; set; } = "registry.k8s.io/pause:3.10";

    /// <summary>The label (key=value) that marks Hypercore nodes; every reservation pod selects it. Default hypercore.vistara.dev/kvm=true (the chart's nodeSelector).</summary>
    public string NodeSelectorLabel { get; set; } = "hypercore.vistara.dev/kvm=true";

    /// <summary>Memory requested per VM on top of its guest memory (the hypervisor process). Default 64 MiB, as admission charges.</summary>
    public long VmMemoryOverheadMb { get; set; } = 64;
}

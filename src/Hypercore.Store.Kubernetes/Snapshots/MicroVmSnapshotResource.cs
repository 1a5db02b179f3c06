using System.Globalization;
using System.Text.Json.Nodes;
using Hypercore.Snapshots;

namespace Hypercore.Store.Kubernetes.Snapshots;

/// <summary>
/// The MicroVMSnapshot custom resource (crds/microvmsnapshots.hypercore.vistara.dev.yaml). The snapshot on disk has
/// the resource's name (so a MicroVM's <c>spec.restoreFrom</c> names either), its manifest's
/// <see cref="SnapshotManifest.Owner"/> is the resource's uid, and the node that took it labels the resource with
/// itself (<see cref="MicroVmResource.NodeLabel"/>), as MicroVMs are, so each node lists and watches only its own.
/// </summary>
public static class MicroVmSnapshotResource
{
    public const string Kind = "MicroVMSnapshot";
    public const string Plural = "microvmsnapshots";

    /// <summary>Held by the node that took the snapshot until its files are deleted.</summary>
    public const string Finalizer = MicroVmResource.Group + "/snapshot-files";

    public const string ConditionReady = "Ready";

    public const string PhasePending = "Pending";
    public const string PhaseInProgress = "InProgress";
    public const string PhaseReady = "Ready";
    public const string PhaseFailed = "Failed";

    // Reasons of the Ready condition (and of phase Failed): what kubectl get mvmsnap shows in its REASON column.
    public const string ReasonMicroVmNotFound = "MicroVMNotFound";
    public const string ReasonMicroVmNotScheduled = "MicroVMNotScheduled";
    public const string ReasonWaitingForMicroVm = "WaitingForMicroVM";
    public const string ReasonMicroVmNotRunning = "MicroVMNotRunning";
    public const string ReasonNameTaken = "SnapshotNameTaken";
    public const string ReasonNotSupported = "SnapshotNotSupported";
    public const string ReasonSnapshotFailed = "SnapshotFailed";
    public const string ReasonFilesMissing = "SnapshotFilesMissing";
    public const string ReasonTaking = "Taking";
    public const string ReasonTaken = "Taken";

    public static string Name(JsonObject obj) => (string?)obj["metadata"]?["name"] ?? "";

    public static string Namespace(JsonObject obj) => (string?)obj["metadata"]?["namespace"] ?? "default";

    public static string Uid(JsonObject obj) => (string?)obj["metadata"]?["uid"] ?? "";

    public static string MicroVmName(JsonObject obj) => (string?)obj["spec"]?["microVMName"] ?? "";

    public static string Node(JsonObject obj) => (string?)obj["metadata"]?["labels"]?[MicroVmResource.NodeLabel] ?? "";

    public static string Phase(JsonObject obj) => (string?)obj["status"]?["phase"] ?? "";

    public static bool IsDeleting(JsonObject obj) => obj["metadata"]?["deletionTimestamp"] is not null;

    public static bool HasFinalizer(JsonObject obj) =>
        obj["metadata"]?["finalizers"] is JsonArray list && list.Any(f => (string?)f == Finalizer);

    /// <summary>The Ready condition's (reason, message), or empty strings.</summary>
    public static (string Reason, string Message) Ready(JsonObject obj)
    {
        var ready = (obj["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => (string?)c["type"] == ConditionReady);
        return ((string?)ready?["reason"] ?? "", (string?)ready?["message"] ?? "");
    }

    /// <summary>A copy of <paramref name="obj"/> labelled with <paramref name="node"/> and holding (or not) the finalizer.</summary>
    public static JsonObject WithClaim(JsonObject obj, string? node, bool finalizer)
    {
        var updated = (JsonObject)obj.DeepClone();
        updated.Remove("status");
        var meta = (JsonObject)updated["metadata"]!;
        if (node is not null)
        {
            var labels = meta["labels"] as JsonObject ?? new JsonObject();
            labels[MicroVmResource.NodeLabel] = node;
            meta["labels"] = labels;
        }

        var finalizers = (meta["finalizers"] as JsonArray)?.Select(f => (string?)f).Where(f => f is not null && f != Finalizer).ToList() ?? [];
        if (finalizer)
        {
            finalizers.Add(Finalizer);
        }

        meta["finalizers"] = new JsonArray([.. finalizers.Select(f => (JsonNode?)JsonValue.Create(f))]);
        updated["apiVersion"] ??= MicroVmResource.ApiVersion;
        updated["kind"] ??= Kind;
        return updated;
    }

    /// <summary>
    /// A copy of <paramref name="obj"/> with status phase, the Ready condition (its transition time kept when its
    /// status does not change) and, from <paramref name="manifest"/>, what the snapshot is and where it lives.
    /// </summary>
    public static JsonObject WithStatus(
        JsonObject obj, string phase, string reason, string message, string? node, SnapshotManifest? manifest, string? path, DateTimeOffset now)
    {
        var updated = (JsonObject)obj.DeepClone();
        var old = obj["status"] as JsonObject;
        var status = new JsonObject { ["phase"] = phase };
        var readyStatus = phase == PhaseReady ? "True" : "False";
        var oldReady = (old?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => (string?)c["type"] == ConditionReady);
        var since = (string?)oldReady?["status"] == readyStatus && oldReady?["lastTransitionTime"] is { } t ? (string?)t : null;
        status["conditions"] = new JsonArray(new JsonObject
        {
            ["type"] = ConditionReady,
            ["status"] = readyStatus,
            ["reason"] = reason,
            ["message"] = message,
            ["lastTransitionTime"] = since ?? MicroVmResource.FormatTime(now),
            ["observedGeneration"] = (long?)obj["metadata"]?["generation"] ?? 1,
        });
        if (node is not null)
        {
            status["node"] = node;
        }

        if (manifest is not null)
        {
            status["sourceUid"] = manifest.SourceUid;
            status["provider"] = manifest.Provider;
            status["hypervisorVersion"] = manifest.HypervisorVersion;
            status["sizeBytes"] = manifest.SizeBytes;
            status["size"] = FormatSize(manifest.SizeBytes);
            status["createdAt"] = MicroVmResource.FormatTime(manifest.CreatedAt);
            status["durationSeconds"] = manifest.DurationSeconds;
            status["wasRunning"] = manifest.WasRunning;
        }

        if (path is not null)
        {
            status["path"] = path;
        }

        updated["status"] = status;
        updated["apiVersion"] ??= MicroVmResource.ApiVersion;
        updated["kind"] ??= Kind;
        return updated;
    }

    /// <summary>Whether writing <paramref name="next"/> would change nothing but timestamps.</summary>
    public static bool SameStatus(JsonObject current, JsonObject next) =>
        JsonNode.DeepEquals(current["status"], next["status"]);

    /// <summary>Binary units as kubectl users read them: 87.8Mi, 1.2Gi, 512Ki.</summary>
    public static string FormatSize(long bytes)
    {
        string[] units = ["", "Ki", "Mi", "Gi", "Ti"];
        double value = bytes;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0
            ? bytes.ToString(CultureInfo.InvariantCulture)
            : value.ToString(value >= 100 ? "0" : "0.#", CultureInfo.InvariantCulture) + units[unit];
    }
}

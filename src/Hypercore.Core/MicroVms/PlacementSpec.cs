using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Hypercore.MicroVms;

/// <summary>
/// Kubernetes (issue 13): where kube-scheduler may place a MicroVM created without a node. The fields are copied to
/// the MicroVM's reservation pod (docs/kubernetes.md), so they mean what they mean on a pod.
/// </summary>
public sealed record PlacementSpec
{
    /// <summary>Node labels the node must have (pod nodeSelector).</summary>
    public IReadOnlyDictionary<string, string> NodeSelector { get; init; } = new Dictionary<string, string>();

    /// <summary>Taints the MicroVM tolerates (pod tolerations).</summary>
    public IReadOnlyList<TolerationSpec> Tolerations { get; init; } = [];

    /// <summary>A core/v1 Affinity as JSON (nodeAffinity, podAffinity, podAntiAffinity), passed to the pod as it is; null: none.</summary>
    public string? AffinityJson { get; init; }

    /// <summary>Pod priority class of the reservation pod; empty: the cluster default.</summary>
    public string PriorityClassName { get; init; } = "";

    public bool Equals(PlacementSpec? other) =>
        other is not null && MicroVmSpec.DictEquals(NodeSelector, other.NodeSelector) && Tolerations.SequenceEqual(other.Tolerations) &&
        AffinityJson == other.AffinityJson && PriorityClassName == other.PriorityClassName;

    public override int GetHashCode() => HashCode.Combine(NodeSelector.Count, Tolerations.Count, AffinityJson, PriorityClassName);
}

/// <summary>A pod toleration (core/v1 Toleration).</summary>
public sealed record TolerationSpec
{
    public string Key { get; init; } = "";

    /// <summary>"Equal" (default) or "Exists".</summary>
    public string Operator { get; init; } = "";

    public string Value { get; init; } = "";

    /// <summary>"NoSchedule", "PreferNoSchedule", "NoExecute", or empty for all.</summary>
    public string Effect { get; init; } = "";

    /// <summary>With NoExecute: how long the pod stays once tainted; null: for ever.</summary>
    public long? TolerationSeconds { get; init; }
}

/// <summary>Shape checks of <see cref="PlacementSpec"/>, with the API server's rules for the pod fields they fill.</summary>
public static partial class PlacementValidator
{
    private static readonly string[] Operators = ["", "Equal", "Exists"];
    private static readonly string[] Effects = ["", "NoSchedule", "PreferNoSchedule", "NoExecute"];
    private static readonly string[] AffinityKinds = ["nodeAffinity", "podAffinity", "podAntiAffinity"];

    public static IEnumerable<string> Validate(MicroVmSpec spec)
    {
        if (spec.Placement is not { } p)
        {
            yield break;
        }

        if (spec.NodeName.Length > 0)
        {
            yield return $"placement: the MicroVM names node \"{spec.NodeName}\"; placement is for a MicroVM without node_name (kube-scheduler picks the node): give one or the other";
        }

        foreach (var (key, value) in p.NodeSelector)
        {
            if (!IsLabelKey(key))
            {
                yield return $"placement.node_selector: \"{key}\" is not a valid label key ([prefix/]name, name: up to 63 of [A-Za-z0-9_.-], alphanumeric at both ends)";
            }

            if (value.Length > 0 && !LabelValue().IsMatch(value))
            {
                yield return $"placement.node_selector[{key}]: \"{value}\" is not a valid label value (up to 63 of [A-Za-z0-9_.-], alphanumeric at both ends)";
            }
        }

        for (var i = 0; i < p.Tolerations.Count; i++)
        {
            var t = p.Tolerations[i];
            var field = $"placement.tolerations[{i}]";
            if (!Operators.Contains(t.Operator, StringComparer.Ordinal))
            {
                yield return $"{field}.operator: \"{t.Operator}\" is not one of Equal, Exists";
            }

            if (!Effects.Contains(t.Effect, StringComparer.Ordinal))
            {
                yield return $"{field}.effect: \"{t.Effect}\" is not one of NoSchedule, PreferNoSchedule, NoExecute (or empty for all)";
            }

            if (t.Key.Length > 0 && !IsLabelKey(t.Key))
            {
                yield return $"{field}.key: \"{t.Key}\" is not a valid label key";
            }

            if (t.Operator == "Exists" && t.Value.Length > 0)
            {
                yield return $"{field}: operator Exists takes no value (\"{t.Value}\")";
            }

            if (t.Key.Length == 0 && t.Operator != "Exists")
            {
                yield return $"{field}: an empty key needs operator Exists (it tolerates every taint)";
            }

            if (t.TolerationSeconds is not null && t.Effect != "NoExecute")
            {
                yield return $"{field}.toleration_seconds: only with effect NoExecute";
            }
        }

        if (p.AffinityJson is { } affinity && AffinityProblem(affinity) is { } problem)
        {
            yield return "placement.affinity_json: " + problem;
        }

        if (p.PriorityClassName.Length > 0 && (p.PriorityClassName.Length > 253 || !Subdomain().IsMatch(p.PriorityClassName)))
        {
            yield return $"placement.priority_class_name: \"{p.PriorityClassName}\" is not a valid name (lower case DNS subdomain)";
        }
    }

    private static string? AffinityProblem(string json)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException ex)
        {
            return $"not JSON: {ex.Message}";
        }

        if (node is not JsonObject o)
        {
            return "must be a JSON object (a core/v1 Affinity)";
        }

        var unknown = o.Select(kv => kv.Key).Where(k => !AffinityKinds.Contains(k, StringComparer.Ordinal)).ToList();
        if (unknown.Count > 0)
        {
            return $"unknown field(s) {string.Join(", ", unknown)}; a core/v1 Affinity has nodeAffinity, podAffinity and podAntiAffinity";
        }

        return o.Where(kv => kv.Value is not JsonObject).Select(kv => $"{kv.Key} must be an object").FirstOrDefault();
    }

    private static bool IsLabelKey(string key)
    {
        var slash = key.LastIndexOf('/');
        var name = slash < 0 ? key : key[(slash + 1)..];
        var prefix = slash < 0 ? null : key[..slash];
        return name.Length is > 0 and <= 63 && LabelValue().IsMatch(name) &&
               (prefix is null || (prefix.Length is > 0 and <= 253 && Subdomain().IsMatch(prefix)));
    }

    [GeneratedRegex("^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\\z")]
    private static partial Regex LabelValue();

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\z")]
    private static partial Regex Subdomain();
}

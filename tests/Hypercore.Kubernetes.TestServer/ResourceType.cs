using System.Text.Json.Nodes;

namespace Hypercore.Kubernetes.TestServer;

/// <summary>A printer column of a custom resource (additionalPrinterColumns).</summary>
public sealed record PrinterColumn(string Name, string Type, string JsonPath, string Description, int Priority);

/// <summary>One served resource: a custom resource from a CRD, or a built-in the server emulates (events).</summary>
public sealed class ResourceType
{
    public required string Group { get; init; }

    public required string Version { get; init; }

    public required string Kind { get; init; }

    public required string Plural { get; init; }

    public required string Singular { get; init; }

    public string ListKind => Kind + "List";

    public IReadOnlyList<string> ShortNames { get; init; } = [];

    public IReadOnlyList<string> Categories { get; init; } = [];

    public bool Namespaced { get; init; } = true;

    public bool HasStatus { get; init; }

    public bool IsCustom { get; init; }

    public IReadOnlyList<PrinterColumn> PrinterColumns { get; init; } = [];

    /// <summary>openAPIV3Schema of a custom resource; null for built-ins (not validated).</summary>
    public JsonObject? Schema { get; init; }

    public string ApiVersion => Group.Length == 0 ? Version : $"{Group}/{Version}";

    public string GroupResource => Group.Length == 0 ? Plural : $"{Plural}.{Group}";

    public static readonly ResourceType CoreEvents = new()
    {
        Group = "",
        Version = "v1",
        Kind = "Event",
        Plural = "events",
        Singular = "event",
        ShortNames = ["ev"],
    };

    /// <summary>Nodes (cluster-scoped, with a status subresource): the node lifecycle controller reads them.</summary>
    public static readonly ResourceType CoreNodes = new()
    {
        Group = "",
        Version = "v1",
        Kind = "Node",
        Plural = "nodes",
        Singular = "node",
        ShortNames = ["no"],
        Namespaced = false,
        HasStatus = true,
    };

    /// <summary>Pods (status subresource; pods/binding is served as kube-scheduler's bind): reservation pods of placement.</summary>
    public static readonly ResourceType CorePods = new()
    {
        Group = "",
        Version = "v1",
        Kind = "Pod",
        Plural = "pods",
        Singular = "pod",
        ShortNames = ["po"],
        HasStatus = true,
    };

    /// <summary>coordination.k8s.io Leases: leader election of the node lifecycle controller.</summary>
    public static readonly ResourceType CoordinationLeases = new()
    {
        Group = "coordination.k8s.io",
        Version = "v1",
        Kind = "Lease",
        Plural = "leases",
        Singular = "lease",
    };

    /// <summary>Reads the served versions of a CustomResourceDefinition (apiextensions.k8s.io/v1).</summary>
    public static IReadOnlyList<ResourceType> FromCrd(JsonObject crd)
    {
        if ((string?)crd["kind"] != "CustomResourceDefinition" || (string?)crd["apiVersion"] != "apiextensions.k8s.io/v1")
        {
            throw new FormatException("not an apiextensions.k8s.io/v1 CustomResourceDefinition");
        }

        var spec = crd["spec"]!.AsObject();
        var names = spec["names"]!.AsObject();
        var list = new List<ResourceType>();
        foreach (var version in spec["versions"]!.AsArray().OfType<JsonObject>().Where(v => (bool?)v["served"] == true))
        {
            list.Add(new ResourceType
            {
                Group = (string)spec["group"]!,
                Version = (string)version["name"]!,
                Kind = (string)names["kind"]!,
                Plural = (string)names["plural"]!,
                Singular = (string?)names["singular"] ?? ((string)names["kind"]!).ToLowerInvariant(),
                ShortNames = (names["shortNames"] as JsonArray)?.Select(n => (string)n!).ToList() ?? [],
                Categories = (names["categories"] as JsonArray)?.Select(n => (string)n!).ToList() ?? [],
                Namespaced = (string?)spec["scope"] != "Cluster",
                HasStatus = version["subresources"]?["status"] is not null,
                IsCustom = true,
                PrinterColumns = (version["additionalPrinterColumns"] as JsonArray)?.OfType<JsonObject>().Select(c => new PrinterColumn(
                    (string)c["name"]!, (string)c["type"]!, (string)c["jsonPath"]!, (string?)c["description"] ?? "", (int?)c["priority"] ?? 0)).ToList() ?? [],
                Schema = version["schema"]?["openAPIV3Schema"]?.DeepClone().AsObject(),
            });
        }

        return list;
    }
}

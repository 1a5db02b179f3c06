using System.Text.Json;
using System.Text.Json.Nodes;
using static Hypercore.Store.Kubernetes.Client.KubernetesApiClient;

namespace Hypercore.Store.Kubernetes.Client;

/// <summary>Custom resources (apis/GROUP/VERSION/…/PLURAL), as raw JSON objects.</summary>
public sealed class CustomObjectsApi
{
    private readonly KubernetesApiClient _client;

    internal CustomObjectsApi(KubernetesApiClient client) => _client = client;

    public Task<JsonNode?> GetNamespacedCustomObjectAsync(
        string group, string version, string namespaceParameter, string plural, string name, CancellationToken cancellationToken = default) =>
        _client.SendAsync(HttpMethod.Get, Item(group, version, namespaceParameter, plural, name), null, null, cancellationToken);

    public Task<JsonNode?> ListNamespacedCustomObjectAsync(
        string group, string version, string namespaceParameter, string plural, string? labelSelector = null, CancellationToken cancellationToken = default) =>
        _client.SendAsync(HttpMethod.Get, Collection(group, version, namespaceParameter, plural), Query(("labelSelector", labelSelector)), null, cancellationToken);

    public Task<JsonNode?> ListCustomObjectForAllNamespacesAsync(
        string group, string version, string plural, string? labelSelector = null, CancellationToken cancellationToken = default) =>
        _client.SendAsync(HttpMethod.Get, Collection(group, version, "", plural), Query(("labelSelector", labelSelector)), null, cancellationToken);

    public Task<JsonNode?> CreateNamespacedCustomObjectAsync(
        JsonObject body, string group, string version, string namespaceParameter, string plural, CancellationToken cancellationToken = default) =>
        _client.SendAsync(HttpMethod.Post, Collection(group, version, namespaceParameter, plural), null, body, cancellationToken);

    /// <summary>PUT of the whole object; metadata.resourceVersion in the body is the precondition.</summary>
    public Task<JsonNode?> ReplaceNamespacedCustomObjectAsync(
        JsonObject body, string group, string version, string namespaceParameter, string plural, string name, CancellationToken cancellationToken = default) =>
        _client.SendAsync(HttpMethod.Put, Item(group, version, namespaceParameter, plural, name), null, body, cancellationToken);

    /// <summary>PUT to the /status subresource.</summary>
    public Task<JsonNode?> ReplaceNamespacedCustomObjectStatusAsync(
        JsonObject body, string group, string version, string namespaceParameter, string plural, string name, CancellationToken cancellationToken = default) =>
        _client.SendAsync(HttpMethod.Put, Item(group, version, namespaceParameter, plural, name) + "/status", null, body, cancellationToken);

    /// <summary>DELETE with DeleteOptions (propagationPolicy, preconditions) as the body.</summary>
    public Task<JsonNode?> DeleteNamespacedCustomObjectAsync(
        string group, string version, string namespaceParameter, string plural, string name, JsonObject? body = null, CancellationToken cancellationToken = default) =>
        _client.SendAsync(HttpMethod.Delete, Item(group, version, namespaceParameter, plural, name), null, body, cancellationToken);

    public IAsyncEnumerable<(WatchEventType Type, JsonObject Object)> WatchListNamespacedCustomObjectAsync(
        string group, string version, string namespaceParameter, string plural, bool? allowWatchBookmarks = null, string? labelSelector = null,
        string? resourceVersion = null, int? timeoutSeconds = null, Action<Exception>? onError = null, CancellationToken cancellationToken = default) =>
        _client.WatchAsync(Collection(group, version, namespaceParameter, plural),
            WatchQuery(allowWatchBookmarks, labelSelector, resourceVersion, timeoutSeconds), onError, cancellationToken);

    public IAsyncEnumerable<(WatchEventType Type, JsonObject Object)> WatchListCustomObjectForAllNamespacesAsync(
        string group, string version, string plural, bool? allowWatchBookmarks = null, string? labelSelector = null,
        string? resourceVersion = null, int? timeoutSeconds = null, Action<Exception>? onError = null, CancellationToken cancellationToken = default) =>
        _client.WatchAsync(Collection(group, version, "", plural),
            WatchQuery(allowWatchBookmarks, labelSelector, resourceVersion, timeoutSeconds), onError, cancellationToken);

    private static string WatchQuery(bool? allowWatchBookmarks, string? labelSelector, string? resourceVersion, int? timeoutSeconds) =>
        Query(
            ("allowWatchBookmarks", allowWatchBookmarks is { } b ? (b ? "true" : "false") : null),
            ("labelSelector", labelSelector),
            ("resourceVersion", resourceVersion),
            ("timeoutSeconds", timeoutSeconds?.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("watch", "true"));

    private static string Collection(string group, string version, string ns, string plural) =>
        ns.Length > 0
            ? $"/apis/{Segment(group)}/{Segment(version)}/namespaces/{Segment(ns)}/{Segment(plural)}"
            : $"/apis/{Segment(group)}/{Segment(version)}/{Segment(plural)}";

    private static string Item(string group, string version, string ns, string plural, string name) =>
        $"{Collection(group, version, ns, plural)}/{Segment(name)}";
}

/// <summary>core/v1: Events, Pods and Nodes, as JSON objects.</summary>
public sealed class CoreV1Api
{
    private readonly KubernetesApiClient _client;

    internal CoreV1Api(KubernetesApiClient client) => _client = client;

    public async Task<JsonObject> CreateNamespacedEventAsync(JsonObject body, string namespaceParameter, CancellationToken cancellationToken = default) =>
        Object(await _client.SendAsync(HttpMethod.Post, $"/api/v1/namespaces/{Segment(namespaceParameter)}/events", null, body, cancellationToken));

    /// <summary>A JSON merge patch (RFC 7386) of one Event.</summary>
    public async Task<JsonObject> PatchNamespacedEventAsync(JsonObject body, string name, string namespaceParameter, CancellationToken cancellationToken = default) =>
        Object(await _client.SendAsync(HttpMethod.Patch, $"/api/v1/namespaces/{Segment(namespaceParameter)}/events/{Segment(name)}", null, body,
            cancellationToken, MergePatch));

    public async Task<JsonObject> ReadNamespacedPodAsync(string name, string namespaceParameter, CancellationToken cancellationToken = default) =>
        Object(await _client.SendAsync(HttpMethod.Get, $"/api/v1/namespaces/{Segment(namespaceParameter)}/pods/{Segment(name)}", null, null, cancellationToken));

    public async Task<JsonObject> CreateNamespacedPodAsync(JsonObject body, string namespaceParameter, CancellationToken cancellationToken = default) =>
        Object(await _client.SendAsync(HttpMethod.Post, $"/api/v1/namespaces/{Segment(namespaceParameter)}/pods", null, body, cancellationToken));

    public Task<JsonNode?> DeleteNamespacedPodAsync(string name, string namespaceParameter, JsonObject? body = null, CancellationToken cancellationToken = default) =>
        _client.SendAsync(HttpMethod.Delete, $"/api/v1/namespaces/{Segment(namespaceParameter)}/pods/{Segment(name)}", null, body, cancellationToken);

    public async Task<JsonObject> ListNodeAsync(CancellationToken cancellationToken = default) =>
        Object(await _client.SendAsync(HttpMethod.Get, "/api/v1/nodes", null, null, cancellationToken));

    internal static JsonObject Object(JsonNode? node) => node as JsonObject ?? throw new JsonException("the API server's answer is not a JSON object");
}

/// <summary>coordination.k8s.io/v1 Leases, as JSON objects.</summary>
public sealed class CoordinationV1Api
{
    private readonly KubernetesApiClient _client;

    internal CoordinationV1Api(KubernetesApiClient client) => _client = client;

    public async Task<JsonObject> ReadNamespacedLeaseAsync(string name, string namespaceParameter, CancellationToken cancellationToken = default) =>
        CoreV1Api.Object(await _client.SendAsync(HttpMethod.Get, $"{Leases(namespaceParameter)}/{Segment(name)}", null, null, cancellationToken));

    public async Task<JsonObject> CreateNamespacedLeaseAsync(JsonObject body, string namespaceParameter, CancellationToken cancellationToken = default) =>
        CoreV1Api.Object(await _client.SendAsync(HttpMethod.Post, Leases(namespaceParameter), null, body, cancellationToken));

    /// <summary>PUT; metadata.resourceVersion in the body is the precondition (409 when another candidate wrote first).</summary>
    public async Task<JsonObject> ReplaceNamespacedLeaseAsync(JsonObject body, string name, string namespaceParameter, CancellationToken cancellationToken = default) =>
        CoreV1Api.Object(await _client.SendAsync(HttpMethod.Put, $"{Leases(namespaceParameter)}/{Segment(name)}", null, body, cancellationToken));

    private static string Leases(string ns) => $"/apis/coordination.k8s.io/v1/namespaces/{Segment(ns)}/leases";
}

using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hypercore.MicroVms;
using Hypercore.Store.Kubernetes.Client;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Hypercore.Store.Kubernetes;

/// <summary>
/// The MicroVM REST calls the store makes, on the custom-object operations of <see cref="KubernetesApiClient"/>, behind Polly
/// (per-attempt timeout inside a capped exponential retry that handles only 5xx, 429 and connection failures).
/// HTTP failures become the store port's exceptions here and nowhere else.
/// </summary>
internal sealed class MicroVmApi
{
    private readonly KubernetesApiClient _client;
    private readonly ResiliencePipeline _idempotent;
    private readonly ResiliencePipeline _create;

    // Kubernetes issue 13: a node lists and watches only the MicroVMs labelled with it, so neither its start-up list
    // nor its watch carries the rest of the cluster. The label follows spec.nodeName (MicroVmResource.LabelsFor).
    private readonly string? _nodeSelector;

    public MicroVmApi(KubernetesApiClient client, KubernetesStoreOptions options, TimeProvider time)
    {
        _client = client;
        _nodeSelector = options.NodeName.Length > 0 ? $"{MicroVmResource.NodeLabel}={options.NodeName}" : null;
        _idempotent = Pipeline(options, time, ShouldRetry);

        // A POST that may have reached the server is not repeated: only a refused connection is safe to retry.
        _create = Pipeline(options, time, ex => ex is HttpRequestException { InnerException: SocketException { SocketErrorCode: SocketError.ConnectionRefused } });
    }

    public async Task<JsonObject?> GetAsync(VmKey key, CancellationToken ct)
    {
        try
        {
            return await RunAsync(_idempotent, async t => Parse(await _client.CustomObjects.GetNamespacedCustomObjectAsync(
                MicroVmResource.Group, MicroVmResource.Version, key.Namespace, MicroVmResource.Plural, key.Id, cancellationToken: t)), key, ct);
        }
        catch (NotFoundException)
        {
            return null;
        }
    }

    /// <summary>Lists one namespace, or all when <paramref name="ns"/> is empty; returns the items and the list's resourceVersion.</summary>
    public Task<(IReadOnlyList<JsonObject> Items, string ResourceVersion)> ListAsync(string ns, CancellationToken ct) => ListAsync(ns, _nodeSelector, ct);

    /// <summary>Lists with another label selector (Kubernetes issue 13: the MicroVMs moved off this node).</summary>
    public Task<(IReadOnlyList<JsonObject> Items, string ResourceVersion)> ListAsync(string ns, string? selector, CancellationToken ct) =>
        RunAsync(_idempotent, async t =>
        {
            var body = ns.Length > 0
                ? await _client.CustomObjects.ListNamespacedCustomObjectAsync(
                    MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural, labelSelector: selector, cancellationToken: t)
                : await _client.CustomObjects.ListCustomObjectForAllNamespacesAsync(
                    MicroVmResource.Group, MicroVmResource.Version, MicroVmResource.Plural, labelSelector: selector, cancellationToken: t);
            var list = Parse(body);
            var items = (list["items"] as JsonArray ?? []).OfType<JsonObject>().Select(i => (JsonObject)i.DeepClone()).ToList();
            foreach (var item in items)
            {
                // List items carry no apiVersion/kind on some servers; the mapping does not need them, writes do.
                item["apiVersion"] ??= MicroVmResource.ApiVersion;
                item["kind"] ??= MicroVmResource.Kind;
            }

            return ((IReadOnlyList<JsonObject>)items, (string?)list["metadata"]?["resourceVersion"] ?? "");
        }, new VmKey(ns, ""), ct);

    public Task<JsonObject> CreateAsync(VmKey key, JsonObject resource, CancellationToken ct) =>
        RunAsync(_create, async t => Parse(await _client.CustomObjects.CreateNamespacedCustomObjectAsync(
            resource, MicroVmResource.Group, MicroVmResource.Version, key.Namespace, MicroVmResource.Plural, cancellationToken: t)), key, ct, creating: true);

    /// <summary>PUT of the whole object; metadata.resourceVersion in <paramref name="resource"/> is the precondition.</summary>
    public Task<JsonObject> ReplaceAsync(VmKey key, JsonObject resource, CancellationToken ct) =>
        RunAsync(_idempotent, async t => Parse(await _client.CustomObjects.ReplaceNamespacedCustomObjectAsync(
            resource, MicroVmResource.Group, MicroVmResource.Version, key.Namespace, MicroVmResource.Plural, key.Id, cancellationToken: t)), key, ct);

    /// <summary>PUT to /status: the server takes only .status from the body and checks metadata.resourceVersion.</summary>
    public Task<JsonObject> ReplaceStatusAsync(VmKey key, JsonObject resource, CancellationToken ct) =>
        RunAsync(_idempotent, async t => Parse(await _client.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync(
            resource, MicroVmResource.Group, MicroVmResource.Version, key.Namespace, MicroVmResource.Plural, key.Id, cancellationToken: t)), key, ct);

    /// <summary>DELETE; returns the object while finalizers hold it (deletionTimestamp set), null once it is gone.</summary>
    public Task<JsonObject?> DeleteAsync(VmKey key, string? uid, CancellationToken ct) =>
        RunAsync(_idempotent, async t =>
        {
            var options = new JsonObject { ["propagationPolicy"] = "Background" };
            if (uid is not null)
            {
                options["preconditions"] = new JsonObject { ["uid"] = uid };
            }

            var body = Parse(await _client.CustomObjects.DeleteNamespacedCustomObjectAsync(
                MicroVmResource.Group, MicroVmResource.Version, key.Namespace, MicroVmResource.Plural, key.Id, body: options, cancellationToken: t));
            return (string?)body["kind"] == MicroVmResource.Kind ? body : null;
        }, key, ct);

    /// <summary>One watch request from <paramref name="resourceVersion"/>; error events (410 Gone) go to <paramref name="onError"/>.</summary>
    public async IAsyncEnumerable<(WatchEventType Type, JsonObject Object)> WatchAsync(
        string ns, string resourceVersion, int timeoutSeconds, Action<Exception> onError, [EnumeratorCancellation] CancellationToken ct)
    {
        var events = ns.Length > 0
            ? _client.CustomObjects.WatchListNamespacedCustomObjectAsync(
                MicroVmResource.Group, MicroVmResource.Version, ns, MicroVmResource.Plural,
                allowWatchBookmarks: true, labelSelector: _nodeSelector, resourceVersion: resourceVersion, timeoutSeconds: timeoutSeconds, onError: onError, cancellationToken: ct)
            : _client.CustomObjects.WatchListCustomObjectForAllNamespacesAsync(
                MicroVmResource.Group, MicroVmResource.Version, MicroVmResource.Plural,
                allowWatchBookmarks: true, labelSelector: _nodeSelector, resourceVersion: resourceVersion, timeoutSeconds: timeoutSeconds, onError: onError, cancellationToken: ct);
        await foreach (var (type, obj) in events.WithCancellation(ct))
        {
            yield return (type, Parse(obj));
        }
    }

    public Task CreateEventAsync(string ns, JsonObject ev, CancellationToken ct) =>
        RunAsync(_create, async t =>
        {
            await _client.CoreV1.CreateNamespacedEventAsync(ev, ns, cancellationToken: t);
            return true;
        }, new VmKey(ns, (string?)ev["metadata"]?["name"] ?? ""), ct, creating: true);

    /// <summary>Merge-patches an event (count, lastTimestamp) as client-go's recorder does for a repeated event.</summary>
    public Task PatchEventAsync(string ns, string name, JsonObject patch, CancellationToken ct) =>
        RunAsync(_idempotent, async t =>
        {
            await _client.CoreV1.PatchNamespacedEventAsync(patch, name, ns, cancellationToken: t);
            return true;
        }, new VmKey(ns, name), ct);

    internal static bool ShouldRetry(Exception ex) => ex switch
    {
        KubernetesApiException r => (int)r.StatusCode >= 500 || r.StatusCode == HttpStatusCode.TooManyRequests,
        HttpRequestException or IOException or TimeoutRejectedException => true,
        _ => false,
    };

    private static ResiliencePipeline Pipeline(KubernetesStoreOptions options, TimeProvider time, Func<Exception, bool> shouldRetry)
    {
        var builder = new ResiliencePipelineBuilder { TimeProvider = time };
        if (options.MaxRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } ex && shouldRetry(ex)),
                MaxRetryAttempts = options.MaxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryBaseDelay,
                MaxDelay = TimeSpan.FromSeconds(10),
            });
        }

        return builder.AddTimeout(options.RequestTimeout).Build();
    }

    private static async Task<T> RunAsync<T>(ResiliencePipeline pipeline, Func<CancellationToken, Task<T>> call, VmKey key, CancellationToken ct, bool creating = false)
    {
        try
        {
            return await pipeline.ExecuteAsync(async t => await call(t), ct);
        }
        catch (KubernetesApiException r)
        {
            var status = TryParse(r.Content);
            var reason = (string?)status?["reason"] ?? "";
            var message = (string?)status?["message"] ?? r.ReasonPhrase ?? "";
            throw r.StatusCode switch
            {
                HttpStatusCode.NotFound when key.Id.Length > 0 => new NotFoundException(key),
                HttpStatusCode.Conflict when creating || reason == "AlreadyExists" => new AlreadyExistsException(key),
                HttpStatusCode.Conflict => new ConflictException(key),
                _ => new StoreException($"kubernetes API: {r.Method} {r.RequestUri.AbsolutePath} returned {(int)r.StatusCode} {reason}: {message}", r),
            };
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TimeoutRejectedException or JsonException or KubernetesStatusException)
        {
            throw new StoreException($"kubernetes API unavailable: {ex.Message}", ex);
        }
    }

    internal static JsonObject Parse(JsonNode? body) => body switch
    {
        JsonObject o => o,
        null => throw new StoreException("kubernetes API returned an empty body"),
        _ => throw new StoreException("kubernetes API returned a body that is not an object"),
    };

    private static JsonObject? TryParse(string? content)
    {
        try
        {
            return string.IsNullOrEmpty(content) ? null : JsonNode.Parse(content) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

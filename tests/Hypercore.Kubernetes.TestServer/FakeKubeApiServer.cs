using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Hypercore.Kubernetes.TestServer;

/// <summary>One request to a resource, as the API server's authorizer would see it (RBAC verb and resource).</summary>
public sealed record ApiRequest(string Verb, string Group, string Resource, string Subresource, string Namespace, string Name, string Method, string Path)
{
    /// <summary>The query's labelSelector (empty when none): which slice a list or watch asked for.</summary>
    public string LabelSelector { get; init; } = "";

    /// <summary>The bearer token the client sent (kubeconfigs written with a token per client tell clients apart).</summary>
    public string Token { get; init; } = "";
}

/// <summary>One list answer: who asked (token, selector) and how many items it carried.</summary>
public sealed record ListedItems(string Token, string LabelSelector, string Resource, int Count);

/// <summary>One event a watch stream carried: who watched (token, selector), the event type and the object's namespace/name.</summary>
public sealed record DeliveredWatchEvent(string Token, string LabelSelector, string Resource, string Type, string Namespace, string Name);

public sealed class FakeKubeApiServerOptions
{
    /// <summary>CustomResourceDefinition YAML files to serve.</summary>
    public IList<string> CrdFiles { get; } = [];

    /// <summary>How often open watches that asked for bookmarks get one. Default 1 s.</summary>
    public TimeSpan BookmarkInterval { get; set; } = TimeSpan.FromSeconds(1);

    public TimeProvider Time { get; set; } = TimeProvider.System;
}

/// <summary>
/// An in-process Kubernetes API server on 127.0.0.1 (plain HTTP/1.1) with the semantics KubernetesClient and kubectl
/// rely on: legacy discovery, OpenAPI v3 (so kubectl uses server-side field validation and JSON merge patch for
/// custom resources), a global resourceVersion, uid/creationTimestamp/generation (bumped only by spec changes), 409
/// on a stale resourceVersion, watch with ADDED/MODIFIED/DELETED/BOOKMARK and 410 Gone for compacted history, the
/// status subresource (spec ignored there, status ignored on the main resource), deletionTimestamp held while
/// finalizers remain, merge and JSON patch, CRD schema defaulting/pruning/validation, Table output with printer
/// columns, and core/v1 events. Tests steer it: compact history, drop or break watches, inject failures, read the
/// request log.
/// </summary>
public sealed partial class FakeKubeApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly FakeKubeApiServerOptions _options;
    private readonly List<ResourceType> _types = [ResourceType.CoreEvents, ResourceType.CoreNodes, ResourceType.CoordinationLeases, ResourceType.CorePods];
    private readonly object _gate = new();
    private readonly Dictionary<string, JsonObject> _objects = new(StringComparer.Ordinal);
    private readonly List<HistoryRecord> _history = [];
    private readonly List<Watch> _watches = [];
    private readonly List<ApiRequest> _requests = [];
    private readonly List<DeliveredWatchEvent> _delivered = [];
    private readonly List<ListedItems> _listed = [];
    private readonly List<Exception> _faults = [];
    private long _resourceVersion = 1000;
    private long _bookmarksSent;
    private long _compactedResourceVersion;
    private int _failCount;
    private int _failStatus;
    private string? _failResource;

    private FakeKubeApiServer(WebApplication app, FakeKubeApiServerOptions options)
    {
        _app = app;
        _options = options;
        foreach (var file in options.CrdFiles)
        {
            foreach (var doc in Yaml.ParseAll(File.ReadAllText(file)).OfType<JsonObject>())
            {
                _types.AddRange(ResourceType.FromCrd(doc));
            }
        }
    }

    public Uri BaseAddress { get; private set; } = new("http://127.0.0.1/");

    public long CurrentResourceVersion
    {
        get
        {
            lock (_gate)
            {
                return _resourceVersion;
            }
        }
    }

    /// <summary>BOOKMARK events queued to watches so far.</summary>
    public long BookmarksSent
    {
        get
        {
            lock (_gate)
            {
                return _bookmarksSent;
            }
        }
    }

    public int OpenWatches
    {
        get
        {
            lock (_gate)
            {
                return _watches.Count;
            }
        }
    }

    /// <summary>Every resource request so far, in order.</summary>
    /// <summary>How many items each list answered, in order.</summary>
    public IReadOnlyList<ListedItems> ListResults
    {
        get
        {
            lock (_gate)
            {
                return _listed.ToList();
            }
        }
    }

    /// <summary>
    /// Creates objects as a POST would (defaults, validation, uid, resourceVersion), without HTTP: for scale tests
    /// that need thousands of them.
    /// </summary>
    public void Seed(string group, string plural, string @namespace, IEnumerable<JsonObject> objects)
    {
        var type = Type(group, plural);
        foreach (var obj in objects)
        {
            Create(type, @namespace, (JsonObject)obj.DeepClone(), "Strict", dryRun: false);
        }
    }

    /// <summary>Every event written to a watch stream, in order.</summary>
    public IReadOnlyList<DeliveredWatchEvent> DeliveredWatchEvents
    {
        get
        {
            lock (_gate)
            {
                return _delivered.ToList();
            }
        }
    }

    public IReadOnlyList<ApiRequest> Requests
    {
        get
        {
            lock (_gate)
            {
                return _requests.ToList();
            }
        }
    }

    public static async Task<FakeKubeApiServer> StartAsync(FakeKubeApiServerOptions? options = null)
    {
        options ??= new FakeKubeApiServerOptions();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http1));
        var app = builder.Build();
        var server = new FakeKubeApiServer(app, options);
        app.Run(server.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseAddress = new Uri(address.EndsWith('/') ? address : address + "/");
        return server;
    }

    /// <summary>Writes a kubeconfig that points kubectl or KubernetesClient at this server (plain HTTP; the token is not checked).</summary>
    public string WriteKubeconfig(string path, string @namespace = "default", string token = "test-token")
    {
        var server = BaseAddress.GetLeftPart(UriPartial.Authority);
        File.WriteAllText(path, $"""
            apiVersion: v1
            kind: Config
            clusters:
              - name: fake
                cluster:
                  server: {server}
            contexts:
              - name: fake
                context:
                  cluster: fake
                  user: fake
                  namespace: {@namespace}
            current-context: fake
            users:
              - name: fake
                user:
                  token: {token}
            """);
        return path;
    }

    public ResourceType Type(string group, string plural) =>
        _types.First(t => t.Group == group && t.Plural == plural);

    /// <summary>A copy of a stored object, or null.</summary>
    public JsonObject? Get(string group, string plural, string @namespace, string name)
    {
        lock (_gate)
        {
            return _objects.TryGetValue(Key(Type(group, plural), @namespace, name), out var obj) ? (JsonObject)obj.DeepClone() : null;
        }
    }

    public IReadOnlyList<JsonObject> List(string group, string plural)
    {
        var type = Type(group, plural);
        lock (_gate)
        {
            return _objects.Where(kv => kv.Key.StartsWith(type.GroupResource + "|", StringComparison.Ordinal))
                .Select(kv => (JsonObject)kv.Value.DeepClone()).ToList();
        }
    }

    public void ClearRequests()
    {
        lock (_gate)
        {
            _requests.Clear();
            _delivered.Clear();
            _listed.Clear();
        }
    }

    /// <summary>Forgets the change history (etcd compaction): a watch from any older resourceVersion now gets 410 Gone.</summary>
    public void CompactHistory()
    {
        lock (_gate)
        {
            _compactedResourceVersion = _resourceVersion;
            _history.Clear();
        }
    }

    /// <summary>Ends every open watch; <paramref name="abort"/> breaks the connection instead of closing the stream cleanly.</summary>
    public int DropWatches(bool abort = false)
    {
        lock (_gate)
        {
            foreach (var w in _watches)
            {
                w.Abort = abort;
                w.Lines.Writer.TryComplete();
            }

            return _watches.Count;
        }
    }

    /// <summary>Sends an ERROR event with a 410 Gone status into every open watch and closes it, as a lagging watch cache does.</summary>
    public int SendGoneToWatches()
    {
        lock (_gate)
        {
            foreach (var w in _watches)
            {
                w.Lines.Writer.TryWrite(WatchLine("ERROR", GoneStatus(w.FromResourceVersion)));
                w.Lines.Writer.TryComplete();
            }

            return _watches.Count;
        }
    }

    /// <summary>
    /// The next <paramref name="count"/> requests (to <paramref name="resource"/> only, when given) fail with
    /// <paramref name="statusCode"/> before touching state.
    /// </summary>
    public void FailNextRequests(int count, int statusCode, string? resource = null)
    {
        lock (_gate)
        {
            _failCount = count;
            _failStatus = statusCode;
            _failResource = resource;
        }
    }

    public async ValueTask DisposeAsync()
    {
        DropWatches(abort: true);
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        try
        {
            var seg = (ctx.Request.Path.Value ?? "/").Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries);
            switch (seg)
            {
                case ["version"]:
                    await WriteJsonAsync(ctx, 200, new JsonObject { ["major"] = "1", ["minor"] = "32", ["gitVersion"] = "v1.32.0-hypercore-test", ["platform"] = "linux/amd64" });
                    return;
                case ["api"]:
                    await WriteJsonAsync(ctx, 200, new JsonObject
                    {
                        ["kind"] = "APIVersions",
                        ["versions"] = new JsonArray("v1"),
                        ["serverAddressByClientCIDRs"] = new JsonArray(new JsonObject { ["clientCIDR"] = "0.0.0.0/0", ["serverAddress"] = BaseAddress.Authority }),
                    });
                    return;
                case ["apis"]:
                    await WriteJsonAsync(ctx, 200, new JsonObject
                    {
                        ["kind"] = "APIGroupList",
                        ["apiVersion"] = "v1",
                        ["groups"] = new JsonArray(Groups().Select(g => (JsonNode)GroupJson(g)).ToArray()),
                    });
                    return;
                case ["apis", var group] when Groups().Contains(group):
                    await WriteJsonAsync(ctx, 200, GroupJson(group).Also(o => { o["kind"] = "APIGroup"; o["apiVersion"] = "v1"; }));
                    return;
                case ["api", "v1"]:
                    await WriteJsonAsync(ctx, 200, ResourceList("", "v1"));
                    return;
                case ["apis", var group, var version] when _types.Any(t => t.Group == group && t.Version == version):
                    await WriteJsonAsync(ctx, 200, ResourceList(group, version));
                    return;
                case ["openapi", "v3"]:
                    await WriteJsonAsync(ctx, 200, OpenApiIndex());
                    return;
                case ["openapi", "v3", "apis", var group, var version] when _types.Any(t => t.IsCustom && t.Group == group && t.Version == version):
                    await WriteJsonAsync(ctx, 200, OpenApiDocument(group, version));
                    return;
                case ["api", "v1", .. var rest] when rest.Length > 0:
                    await HandleResourceAsync(ctx, "", "v1", rest);
                    return;
                case ["apis", var group, var version, .. var rest] when rest.Length > 0:
                    await HandleResourceAsync(ctx, group, version, rest);
                    return;
                default:
                    throw new ApiError(404, "NotFound", "the server could not find the requested resource");
            }
        }
        catch (ApiError e)
        {
            if (!ctx.Response.HasStarted)
            {
                await WriteJsonAsync(ctx, e.Code, StatusJson(e.Code, e.Reason, e.Message, e.Details));
            }
        }
        catch (Exception e) when (e is Microsoft.AspNetCore.Http.BadHttpRequestException or IOException || ctx.RequestAborted.IsCancellationRequested)
        {
            // The client went away mid-request (a store disposed while a call was in flight): nobody to answer.
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A bug in this server, not an API answer: keep it for the test to assert on, and answer 500.
            lock (_gate)
            {
                _faults.Add(e);
            }

            if (!ctx.Response.HasStarted)
            {
                await WriteJsonAsync(ctx, 500, StatusJson(500, "InternalError", e.ToString(), null));
            }
        }
    }

    /// <summary>Unexpected exceptions inside this server (its own bugs); tests assert this stays empty.</summary>
    public IReadOnlyList<Exception> Faults
    {
        get
        {
            lock (_gate)
            {
                return _faults.ToList();
            }
        }
    }

    private async Task HandleResourceAsync(HttpContext ctx, string group, string version, string[] rest)
    {
        string ns = "", plural, name = "", sub = "";
        switch (rest)
        {
            case ["namespaces", var n, var p, .. var tail]:
                (ns, plural) = (n, p);
                name = tail.Length > 0 ? tail[0] : "";
                sub = tail.Length > 1 ? tail[1] : "";
                break;
            case ["namespaces", .. var tail] when group.Length == 0:
                await HandleNamespaceAsync(ctx, tail.Length > 0 ? tail[0] : "");
                return;
            case [var p, .. var tail]:
                plural = p;
                name = tail.Length > 0 ? tail[0] : "";
                sub = tail.Length > 1 ? tail[1] : "";
                break;
            default:
                throw new ApiError(404, "NotFound", "the server could not find the requested resource");
        }

        var type = _types.FirstOrDefault(t => t.Group == group && t.Version == version && t.Plural == plural)
            ?? throw new ApiError(404, "NotFound", "the server could not find the requested resource");
        var q = ctx.Request.Query;
        var watch = q["watch"] is var w && (w == "true" || w == "1");
        var method = ctx.Request.Method;
        var verb = (method, name.Length > 0) switch
        {
            ("GET", true) => "get",
            ("GET", false) => watch ? "watch" : "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => throw new ApiError(405, "MethodNotAllowed", $"method {method} is not supported"),
        };
        lock (_gate)
        {
            _requests.Add(new ApiRequest(verb, group, plural, sub, ns, name, method, ctx.Request.Path.Value ?? "")
            {
                LabelSelector = q["labelSelector"].ToString(),
                Token = TokenOf(ctx),
            });
            if (_failCount > 0 && (_failResource is null || _failResource == plural))
            {
                _failCount--;
                throw new ApiError(_failStatus, _failStatus == 503 ? "ServiceUnavailable" : "InternalError", $"injected failure {_failStatus}");
            }
        }

        if (type == ResourceType.CorePods && sub == "binding" && method == "POST")
        {
            await WriteJsonAsync(ctx, 201, Bind(ns, name, await ReadBodyAsync(ctx)));
            return;
        }

        if (sub.Length > 0 && !(sub == "status" && type.HasStatus))
        {
            throw new ApiError(404, "NotFound", "the server could not find the requested resource");
        }

        if (type.Namespaced && ns.Length == 0 && verb is not ("list" or "watch"))
        {
            throw new ApiError(404, "NotFound", "the server could not find the requested resource");
        }

        switch (verb)
        {
            case "get":
                var found = GetOrThrow(type, ns, name);
                await WriteObjectAsync(ctx, 200, type, found, list: false);
                return;
            case "list":
                var listed = ListJson(type, ns, Selector.Parse(q["labelSelector"]));
                lock (_gate)
                {
                    _listed.Add(new ListedItems(TokenOf(ctx), q["labelSelector"].ToString(), type.Plural, ((JsonArray)listed["items"]!).Count));
                }

                await WriteObjectAsync(ctx, 200, type, listed, list: true);
                return;
            case "watch":
                await WatchAsync(ctx, type, ns);
                return;
            case "create":
                await WriteJsonAsync(ctx, 201, Create(type, ns, await ReadBodyAsync(ctx), q["fieldValidation"], q["dryRun"].Count > 0));
                return;
            case "update":
                await WriteJsonAsync(ctx, 200, Update(type, ns, name, sub, await ReadBodyAsync(ctx), q["fieldValidation"], patchedFrom: null));
                return;
            case "patch":
                await WriteJsonAsync(ctx, 200, Patch(type, ns, name, sub, ctx.Request.ContentType ?? "", await ReadTextAsync(ctx), q["fieldValidation"]));
                return;
            case "delete":
                var text = await ReadTextAsync(ctx);
                var (code, body) = Delete(type, ns, name, text.Length > 0 ? JsonNode.Parse(text) as JsonObject : null);
                await WriteJsonAsync(ctx, code, body);
                return;
            default:
                throw new ApiError(405, "MethodNotAllowed", $"{verb} is not supported by this test server");
        }
    }

    private static async Task HandleNamespaceAsync(HttpContext ctx, string name)
    {
        JsonObject Ns(string n) => new()
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Namespace",
            ["metadata"] = new JsonObject { ["name"] = n },
            ["status"] = new JsonObject { ["phase"] = "Active" },
        };
        if (ctx.Request.Method != "GET")
        {
            throw new ApiError(405, "MethodNotAllowed", "namespaces are fixed in this test server");
        }

        await WriteJsonAsync(ctx, 200, name.Length > 0
            ? Ns(name)
            : new JsonObject { ["apiVersion"] = "v1", ["kind"] = "NamespaceList", ["metadata"] = new JsonObject(), ["items"] = new JsonArray(Ns("default")) });
    }

    // ---- state changes (all under _gate) ----

    private JsonObject GetOrThrow(ResourceType type, string ns, string name)
    {
        lock (_gate)
        {
            return _objects.TryGetValue(Key(type, ns, name), out var obj)
                ? (JsonObject)obj.DeepClone()
                : throw NotFound(type, name);
        }
    }

    private JsonObject ListJson(ResourceType type, string ns, Selector selector)
    {
        lock (_gate)
        {
            var items = Matching(type, ns, selector).Select(o => (JsonNode)o.DeepClone()).ToArray();
            return new JsonObject
            {
                ["apiVersion"] = type.ApiVersion,
                ["kind"] = type.ListKind,
                ["metadata"] = new JsonObject { ["resourceVersion"] = _resourceVersion.ToString(CultureInfo.InvariantCulture) },
                ["items"] = new JsonArray(items),
            };
        }
    }

    private IEnumerable<JsonObject> Matching(ResourceType type, string ns, Selector selector) =>
        _objects.Where(kv => kv.Key.StartsWith(type.GroupResource + "|", StringComparison.Ordinal))
            .Select(kv => kv.Value)
            .Where(o => ns.Length == 0 || (string?)o["metadata"]?["namespace"] == ns)
            .Where(selector.Matches)
            .OrderBy(o => (string?)o["metadata"]?["namespace"], StringComparer.Ordinal)
            .ThenBy(o => (string?)o["metadata"]?["name"], StringComparer.Ordinal);

    private JsonObject Create(ResourceType type, string ns, JsonObject body, string? fieldValidation, bool dryRun)
    {
        CheckKind(type, body);
        var meta = body["metadata"] as JsonObject ?? new JsonObject();
        body["metadata"] = meta;
        if ((string?)meta["namespace"] is { Length: > 0 } bodyNs && bodyNs != ns)
        {
            throw new ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request");
        }

        if ((string?)meta["name"] is not { Length: > 0 } && (string?)meta["generateName"] is { Length: > 0 } prefix)
        {
            meta["name"] = prefix + Guid.NewGuid().ToString("N")[..5];
        }

        var name = (string?)meta["name"] ?? "";
        if (!DnsSubdomain().IsMatch(name) || name.Length > 253)
        {
            throw Invalid(type, name, [new SchemaError("metadata.name", "FieldValueInvalid",
                $"Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")]);
        }

        if (type.Namespaced)
        {
            meta["namespace"] = ns;
        }

        foreach (var k in new[] { "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields" })
        {
            meta.Remove(k);
        }

        if (type.HasStatus)
        {
            body.Remove("status"); // status is ignored on create when the status subresource is on
        }

        Admit(type, name, body, null, fieldValidation);
        CheckCelRules(type, name, body, old: null);
        lock (_gate)
        {
            var key = Key(type, ns, name);
            if (_objects.ContainsKey(key))
            {
                throw new ApiError(409, "AlreadyExists", $"{type.GroupResource} \"{name}\" already exists",
                    new JsonObject { ["name"] = name, ["group"] = type.Group, ["kind"] = type.Plural });
            }

            meta["uid"] = Guid.NewGuid().ToString();
            meta["creationTimestamp"] = Now();
            if (type.IsCustom)
            {
                meta["generation"] = 1;
            }

            if (dryRun)
            {
                return body;
            }

            meta["resourceVersion"] = NextResourceVersion();
            _objects[key] = Normalize(body);
            Publish(type, "ADDED", body);
            return body;
        }
    }

    private JsonObject Patch(ResourceType type, string ns, string name, string subresource, string contentType, string text, string? fieldValidation)
    {
        var mediaType = contentType.Split(';')[0].Trim();
        JsonNode? patch;
        try
        {
            patch = JsonNode.Parse(text);
        }
        catch (JsonException e)
        {
            throw new ApiError(400, "BadRequest", $"error decoding patch: {e.Message}");
        }

        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return PatchOnce(type, ns, name, subresource, mediaType, patch, fieldValidation);
            }
            catch (RetryPatch) when (attempt < 5)
            {
            }
        }
    }

    private JsonObject PatchOnce(ResourceType type, string ns, string name, string subresource, string mediaType, JsonNode? patch, string? fieldValidation)
    {
        var current = GetOrThrow(type, ns, name);
        JsonObject patched;
        switch (mediaType)
        {
            case "application/merge-patch+json":
            case "application/strategic-merge-patch+json" when !type.IsCustom:
                patched = (JsonObject)JsonPatches.Merge(current.DeepClone(), patch)!;
                break;
            case "application/json-patch+json" when patch is JsonArray ops:
                try
                {
                    patched = (JsonObject)JsonPatches.ApplyJsonPatch(current.DeepClone(), ops);
                }
                catch (InvalidOperationException e)
                {
                    throw new ApiError(422, "Invalid", e.Message);
                }

                break;
            default:
                throw new ApiError(415, "UnsupportedMediaType", $"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json{(type.IsCustom ? "" : ", application/strategic-merge-patch+json")}");
        }

        return Update(type, ns, name, subresource, patched, fieldValidation, patchedFrom: current);
    }

    /// <summary>PUT semantics; a patch arrives here too, already applied to the stored object.</summary>
    private JsonObject Update(ResourceType type, string ns, string name, string subresource, JsonObject body, string? fieldValidation, JsonObject? patchedFrom)
    {
        CheckKind(type, body);
        var bodyMeta = body["metadata"] as JsonObject ?? new JsonObject();
        if ((string?)bodyMeta["name"] is { } bodyName && bodyName != name)
        {
            throw new ApiError(400, "BadRequest", $"the name of the object ({bodyName}) does not match the name on the URL ({name})");
        }

        lock (_gate)
        {
            var key = Key(type, ns, name);
            if (!_objects.TryGetValue(key, out var old))
            {
                throw NotFound(type, name);
            }

            if (patchedFrom is not null && (string?)old["metadata"]?["resourceVersion"] != (string?)patchedFrom["metadata"]?["resourceVersion"])
            {
                // The object changed between reading it for the patch and now: retry on the fresh copy, as the server does.
                throw new RetryPatch();
            }

            var oldMeta = old["metadata"]!.AsObject();
            var rv = (string?)bodyMeta["resourceVersion"];
            if (!string.IsNullOrEmpty(rv) && rv != (string?)oldMeta["resourceVersion"])
            {
                throw Conflict(type, name, "the object has been modified; please apply your changes to the latest version and try again");
            }

            JsonObject next;
            if (subresource == "status")
            {
                next = (JsonObject)old.DeepClone();
                if (body["status"] is { } status)
                {
                    next["status"] = status.DeepClone();
                }
                else
                {
                    next.Remove("status");
                }

                if (type.Schema?["properties"]?["status"] is JsonObject statusSchema && next["status"] is { } s)
                {
                    Admit(type, name, s, statusSchema, fieldValidation, path: "status");
                }
            }
            else
            {
                next = (JsonObject)body.DeepClone();
                var meta = next["metadata"] as JsonObject ?? new JsonObject();
                next["metadata"] = meta;
                foreach (var k in new[] { "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "namespace", "name" })
                {
                    meta.Remove(k);
                    if (oldMeta[k] is { } v)
                    {
                        meta[k] = v.DeepClone();
                    }
                }

                if (type.HasStatus)
                {
                    next.Remove("status");
                    if (old["status"] is { } oldStatus)
                    {
                        next["status"] = oldStatus.DeepClone();
                    }
                }

                Admit(type, name, next, null, fieldValidation);
                CheckCelRules(type, name, next, old);
                if (oldMeta["deletionTimestamp"] is not null)
                {
                    var before = Finalizers(old);
                    var added = Finalizers(next).Except(before).ToList();
                    if (added.Count > 0)
                    {
                        throw Invalid(type, name, [new SchemaError("metadata.finalizers", "FieldValueForbidden",
                            $"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{\"{string.Join("\", \"", added)}\"}}")]);
                    }
                }

                if (type.IsCustom && !JsonNode.DeepEquals(WithoutMetaAndStatus(old), WithoutMetaAndStatus(next)))
                {
                    meta["generation"] = ((long?)oldMeta["generation"] ?? 1) + 1;
                }
            }

            next["metadata"]!["resourceVersion"] = oldMeta["resourceVersion"]!.DeepClone();
            next["metadata"]!.AsObject().Remove("managedFields");
            if (JsonNode.DeepEquals(next, old))
            {
                return (JsonObject)old.DeepClone(); // no-op: no new resourceVersion, no event
            }

            next["metadata"]!["resourceVersion"] = NextResourceVersion();
            if (next["metadata"]!["deletionTimestamp"] is not null && Finalizers(next).Count == 0)
            {
                _objects.Remove(key);
                Publish(type, "DELETED", next);
                return next;
            }

            _objects[key] = Normalize(next);
            Publish(type, "MODIFIED", next, previous: old);
            return next;
        }
    }

    private (int Code, JsonObject Body) Delete(ResourceType type, string ns, string name, JsonObject? options)
    {
        lock (_gate)
        {
            var key = Key(type, ns, name);
            if (!_objects.TryGetValue(key, out var obj))
            {
                throw NotFound(type, name);
            }

            var meta = obj["metadata"]!.AsObject();
            if ((string?)options?["preconditions"]?["uid"] is { } uid && uid != (string?)meta["uid"])
            {
                throw Conflict(type, name, $"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta["uid"]}");
            }

            if ((string?)options?["preconditions"]?["resourceVersion"] is { } rv && rv != (string?)meta["resourceVersion"])
            {
                throw Conflict(type, name, $"Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {meta["resourceVersion"]}");
            }

            if (Finalizers(obj).Count > 0)
            {
                if (meta["deletionTimestamp"] is null)
                {
                    meta["deletionTimestamp"] = Now();
                    meta["deletionGracePeriodSeconds"] = 0;
                    meta["resourceVersion"] = NextResourceVersion();
                    Publish(type, "MODIFIED", obj);
                }

                return (200, (JsonObject)obj.DeepClone());
            }

            _objects.Remove(key);
            meta["resourceVersion"] = NextResourceVersion();
            Publish(type, "DELETED", obj);
            if (type == ResourceType.CorePods)
            {
                return (200, (JsonObject)obj.DeepClone()); // the API server answers a pod DELETE with the pod, which clients decode as V1Pod
            }

            return (200, new JsonObject
            {
                ["kind"] = "Status",
                ["apiVersion"] = "v1",
                ["metadata"] = new JsonObject(),
                ["status"] = "Success",
                ["details"] = new JsonObject { ["name"] = name, ["group"] = type.Group, ["kind"] = type.Plural, ["uid"] = meta["uid"]?.DeepClone() },
            });
        }
    }

    /// <summary>Defaulting, pruning (or strict rejection of unknown fields) and validation against the CRD schema.</summary>
    /// <summary>
    /// POST pods/{name}/binding, as kube-scheduler binds: sets spec.nodeName (once; a bound pod answers 409) and the
    /// PodScheduled condition.
    /// </summary>
    private JsonObject Bind(string ns, string name, JsonObject binding)
    {
        var node = (string?)binding["target"]?["name"] ?? throw new ApiError(400, "BadRequest", "binding has no target.name");
        lock (_gate)
        {
            var key = Key(ResourceType.CorePods, ns, name);
            if (!_objects.TryGetValue(key, out var old))
            {
                throw NotFound(ResourceType.CorePods, name);
            }

            if ((string?)old["spec"]?["nodeName"] is { Length: > 0 } bound)
            {
                throw new ApiError(409, "Conflict", $"Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{bound}\"");
            }

            var next = (JsonObject)old.DeepClone();
            next["spec"]!["nodeName"] = node;
            var status = next["status"] as JsonObject ?? new JsonObject();
            status["conditions"] = new JsonArray(new JsonObject { ["type"] = "PodScheduled", ["status"] = "True", ["lastTransitionTime"] = Now() });
            next["status"] = status;
            next["metadata"]!["resourceVersion"] = NextResourceVersion();
            _objects[key] = Normalize(next);
            Publish(ResourceType.CorePods, "MODIFIED", next, previous: old);
            return StatusJson(201, "Created", "", null).Also(o => o["status"] = "Success");
        }
    }

    /// <summary>The CRD's x-kubernetes-validations that <see cref="CelRules"/> can evaluate (transition rules on update only).</summary>
    private static void CheckCelRules(ResourceType type, string name, JsonObject next, JsonObject? old)
    {
        if (type.Schema is { } schema && CelRules.Check(next, old, schema) is { Count: > 0 } errors)
        {
            throw Invalid(type, name, errors);
        }
    }

    private static void Admit(ResourceType type, string name, JsonNode node, JsonObject? schema, string? fieldValidation, string path = "")
    {
        schema ??= type.Schema;
        if (schema is null)
        {
            return;
        }

        // metadata, apiVersion and kind are the API server's business, not the schema's.
        JsonNode? metadata = null;
        if (path.Length == 0 && node is JsonObject root)
        {
            metadata = root["metadata"];
            root.Remove("metadata");
        }

        try
        {
            SchemaValidator.ApplyDefaults(node, schema);
            var probe = node.DeepClone();
            var unknown = SchemaValidator.Prune(probe, schema, path, new HashSet<string> { "apiVersion", "kind" });
            if (unknown.Count > 0 && string.Equals(fieldValidation, "Strict", StringComparison.OrdinalIgnoreCase))
            {
                throw new ApiError(400, "BadRequest",
                    $"{type.Kind} in version \"{type.Version}\" cannot be handled as a {type.Kind}: strict decoding error: {string.Join(", ", unknown.Select(u => $"unknown field \"{u}\""))}");
            }

            SchemaValidator.Prune(node, schema, path, new HashSet<string> { "apiVersion", "kind" });
            var errors = SchemaValidator.Validate(node, schema, path);
            if (errors.Count > 0)
            {
                throw Invalid(type, name, errors);
            }
        }
        finally
        {
            if (metadata is not null)
            {
                ((JsonObject)node)["metadata"] = metadata;
            }
        }
    }

    // ---- watch ----

    private async Task WatchAsync(HttpContext ctx, ResourceType type, string ns)
    {
        var q = ctx.Request.Query;
        var selector = Selector.Parse(q["labelSelector"]);
        var from = q["resourceVersion"].ToString();
        var bookmarks = q["allowWatchBookmarks"] == "true";
        var timeout = int.TryParse(q["timeoutSeconds"], out var t) && t > 0 ? TimeSpan.FromSeconds(t) : Timeout.InfiniteTimeSpan;
        var watch = new Watch(type, ns, selector, from) { Token = TokenOf(ctx), SelectorText = q["labelSelector"].ToString() };
        var gone = false;
        lock (_gate)
        {
            if (from is "" or "0")
            {
                foreach (var obj in Matching(type, ns, selector).OrderBy(o => long.Parse((string)o["metadata"]!["resourceVersion"]!, CultureInfo.InvariantCulture)))
                {
                    Deliver(watch, "ADDED", obj);
                }
            }
            else if (!long.TryParse(from, NumberStyles.None, CultureInfo.InvariantCulture, out var rv))
            {
                throw new ApiError(400, "BadRequest", $"invalid resource version: {from}");
            }
            else if (rv < _compactedResourceVersion)
            {
                gone = true;
            }
            else
            {
                foreach (var rec in _history.Where(h => h.ResourceVersion > rv))
                {
                    if (watch.EventFor(rec.Type, rec.EventType, rec.Object, rec.Previous) is { } eventType)
                    {
                        Deliver(watch, eventType, rec.Object);
                    }
                }
            }

            if (!gone)
            {
                _watches.Add(watch);
            }
        }

        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.StartAsync();
        await ctx.Response.Body.FlushAsync(); // headers now, as the API server sends them, even before the first event
        if (gone)
        {
            await ctx.Response.WriteAsync(WatchLine("ERROR", GoneStatus(from)) + "\n");
            return;
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        if (timeout != Timeout.InfiniteTimeSpan)
        {
            cts.CancelAfter(timeout);
        }

        var bookmarker = bookmarks ? SendBookmarksAsync(watch, cts.Token) : Task.CompletedTask;
        try
        {
            await foreach (var line in watch.Lines.Reader.ReadAllAsync(cts.Token))
            {
                await ctx.Response.WriteAsync(line + "\n", cts.Token);
                await ctx.Response.Body.FlushAsync(cts.Token);
            }

            if (watch.Abort)
            {
                ctx.Abort();
            }
        }
        catch (OperationCanceledException)
        {
            // timeoutSeconds elapsed or the client went away: end the stream.
        }
        finally
        {
            lock (_gate)
            {
                _watches.Remove(watch);
            }

            await cts.CancelAsync();
            await bookmarker.ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private async Task SendBookmarksAsync(Watch watch, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(_options.BookmarkInterval, _options.Time);
        while (await timer.WaitForNextTickAsync(ct))
        {
            lock (_gate)
            {
                _bookmarksSent++;
                watch.Lines.Writer.TryWrite(WatchLine("BOOKMARK", new JsonObject
                {
                    ["apiVersion"] = watch.Type.ApiVersion,
                    ["kind"] = watch.Type.Kind,
                    ["metadata"] = new JsonObject { ["resourceVersion"] = _resourceVersion.ToString(CultureInfo.InvariantCulture) },
                }));
            }
        }
    }

    /// <summary>
    /// Sends a change to the watches that want it. With a label selector, as on a real API server, a MODIFIED that
    /// makes an object start matching reaches the watch as ADDED and one that makes it stop matching as DELETED
    /// (<paramref name="previous"/> is the object before the change; null when its labels did not change).
    /// </summary>
    private void Publish(ResourceType type, string eventType, JsonObject obj, JsonObject? previous = null)
    {
        var snapshot = Normalize(obj);
        var before = previous is null ? null : Normalize(previous);
        var rv = long.Parse((string)snapshot["metadata"]!["resourceVersion"]!, CultureInfo.InvariantCulture);
        _history.Add(new HistoryRecord(rv, eventType, type, snapshot, before));
        foreach (var w in _watches)
        {
            if (w.EventFor(type, eventType, snapshot, before) is { } sent)
            {
                Deliver(w, sent, snapshot);
            }
        }
    }

    private void Deliver(Watch watch, string eventType, JsonObject obj)
    {
        watch.Lines.Writer.TryWrite(WatchLine(eventType, obj));
        _delivered.Add(new DeliveredWatchEvent(watch.Token, watch.SelectorText, watch.Type.Plural, eventType,
            (string?)obj["metadata"]?["namespace"] ?? "", (string?)obj["metadata"]?["name"] ?? ""));
    }

    private static string TokenOf(HttpContext ctx)
    {
        var header = ctx.Request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..] : "";
    }

    private static string WatchLine(string type, JsonObject obj) =>
        new JsonObject { ["type"] = type, ["object"] = obj.DeepClone() }.ToJsonString();

    private static JsonObject GoneStatus(string from) =>
        StatusJson(410, "Expired", $"too old resource version: {from}", null);

    // ---- output ----

    private async Task WriteObjectAsync(HttpContext ctx, int code, ResourceType type, JsonObject body, bool list)
    {
        var accept = ctx.Request.Headers.Accept.ToString();
        if (accept.Contains("as=Table", StringComparison.Ordinal))
        {
            await WriteJsonAsync(ctx, code, Table(type, body, list, ctx.Request.Query["includeObject"].ToString()));
            return;
        }

        await WriteJsonAsync(ctx, code, body);
    }

    private JsonObject Table(ResourceType type, JsonObject body, bool list, string includeObject)
    {
        var columns = new JsonArray(new JsonObject
        {
            ["name"] = "Name",
            ["type"] = "string",
            ["format"] = "name",
            ["description"] = "Name must be unique within a namespace.",
            ["priority"] = 0,
        });
        var printer = type.PrinterColumns.Count > 0
            ? type.PrinterColumns
            : [new PrinterColumn("Age", "date", ".metadata.creationTimestamp", "", 0)];
        foreach (var c in printer)
        {
            columns.Add(new JsonObject { ["name"] = c.Name, ["type"] = c.Type == "date" ? "string" : c.Type, ["format"] = "", ["description"] = c.Description, ["priority"] = c.Priority });
        }

        var items = list ? (body["items"] as JsonArray ?? []).OfType<JsonObject>().ToList() : [body];
        var rows = new JsonArray();
        foreach (var item in items)
        {
            var cells = new JsonArray(JsonValue.Create((string?)item["metadata"]?["name"]));
            foreach (var c in printer)
            {
                var values = JsonPathLite.Evaluate(item, c.JsonPath);
                var v = values.FirstOrDefault();
                cells.Add(c.Type == "date" && v is JsonValue dv && DateTimeOffset.TryParse(dv.ToString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var when)
                    ? JsonValue.Create(HumanDuration(_options.Time.GetUtcNow() - when))
                    : v?.DeepClone());
            }

            var row = new JsonObject { ["cells"] = cells };
            row["object"] = includeObject switch
            {
                "None" => null,
                "Object" => item.DeepClone(),
                _ => new JsonObject
                {
                    ["kind"] = "PartialObjectMetadata",
                    ["apiVersion"] = "meta.k8s.io/v1",
                    ["metadata"] = item["metadata"]?.DeepClone(),
                },
            };
            rows.Add(row);
        }

        return new JsonObject
        {
            ["kind"] = "Table",
            ["apiVersion"] = "meta.k8s.io/v1",
            ["metadata"] = new JsonObject { ["resourceVersion"] = (string?)body["metadata"]?["resourceVersion"] ?? "" },
            ["columnDefinitions"] = columns,
            ["rows"] = rows,
        };
    }

    /// <summary>Kubernetes' duration.HumanDuration, the form kubectl shows in AGE columns.</summary>
    public static string HumanDuration(TimeSpan d)
    {
        if (d < TimeSpan.Zero)
        {
            d = TimeSpan.Zero;
        }

        var s = (long)d.TotalSeconds;
        var m = (long)d.TotalMinutes;
        var h = (long)d.TotalHours;
        return s switch
        {
            < 120 => $"{s}s",
            _ when m < 10 => s % 60 == 0 ? $"{m}m" : $"{m}m{s % 60}s",
            _ when m < 180 => $"{m}m",
            _ when h < 8 => m % 60 == 0 ? $"{h}h" : $"{h}h{m % 60}m",
            _ when h < 48 => $"{h}h",
            _ when h < 24 * 8 => h % 24 == 0 ? $"{h / 24}d" : $"{h / 24}d{h % 24}h",
            _ => $"{h / 24}d",
        };
    }

    private IEnumerable<string> Groups() => _types.Where(t => t.Group.Length > 0).Select(t => t.Group).Distinct();

    private JsonObject GroupJson(string group)
    {
        var versions = _types.Where(t => t.Group == group).Select(t => t.Version).Distinct().ToList();
        return new JsonObject
        {
            ["name"] = group,
            ["versions"] = new JsonArray(versions.Select(v => (JsonNode)new JsonObject { ["groupVersion"] = $"{group}/{v}", ["version"] = v }).ToArray()),
            ["preferredVersion"] = new JsonObject { ["groupVersion"] = $"{group}/{versions[0]}", ["version"] = versions[0] },
        };
    }

    private JsonObject ResourceList(string group, string version)
    {
        var resources = new JsonArray();
        if (group.Length == 0)
        {
            resources.Add(new JsonObject
            {
                ["name"] = "namespaces",
                ["singularName"] = "namespace",
                ["namespaced"] = false,
                ["kind"] = "Namespace",
                ["verbs"] = new JsonArray("get", "list"),
                ["shortNames"] = new JsonArray("ns"),
            });
        }

        foreach (var t in _types.Where(t => t.Group == group && t.Version == version))
        {
            resources.Add(new JsonObject
            {
                ["name"] = t.Plural,
                ["singularName"] = t.Singular,
                ["namespaced"] = t.Namespaced,
                ["kind"] = t.Kind,
                ["verbs"] = new JsonArray("create", "delete", "get", "list", "patch", "update", "watch"),
                ["shortNames"] = new JsonArray(t.ShortNames.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
                ["categories"] = new JsonArray(t.Categories.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
            });
            if (t.HasStatus)
            {
                resources.Add(new JsonObject
                {
                    ["name"] = t.Plural + "/status",
                    ["singularName"] = "",
                    ["namespaced"] = t.Namespaced,
                    ["kind"] = t.Kind,
                    ["verbs"] = new JsonArray("get", "patch", "update"),
                });
            }
        }

        return new JsonObject
        {
            ["kind"] = "APIResourceList",
            ["apiVersion"] = "v1",
            ["groupVersion"] = group.Length == 0 ? version : $"{group}/{version}",
            ["resources"] = resources,
        };
    }

    private JsonObject OpenApiIndex()
    {
        var paths = new JsonObject();
        foreach (var gv in _types.Where(t => t.IsCustom).Select(t => (t.Group, t.Version)).Distinct())
        {
            var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(OpenApiDocument(gv.Group, gv.Version).ToJsonString())))[..16];
            paths[$"apis/{gv.Group}/{gv.Version}"] = new JsonObject { ["serverRelativeURL"] = $"/openapi/v3/apis/{gv.Group}/{gv.Version}?hash={hash}" };
        }

        return new JsonObject { ["paths"] = paths };
    }

    /// <summary>
    /// Enough of the OpenAPI v3 document for kubectl: the schema with x-kubernetes-group-version-kind and a PATCH
    /// operation that declares the fieldValidation query parameter (kubectl then relies on server-side validation)
    /// and accepts JSON and merge patches but not strategic merge patch (kubectl apply then sends a merge patch).
    /// </summary>
    private JsonObject OpenApiDocument(string group, string version)
    {
        var paths = new JsonObject();
        var schemas = new JsonObject();
        var reversed = string.Join('.', group.Split('.').Reverse());
        foreach (var t in _types.Where(t => t.IsCustom && t.Group == group && t.Version == version))
        {
            JsonObject Gvk() => new() { ["group"] = group, ["version"] = version, ["kind"] = t.Kind };
            JsonArray Params(params string[] names) => new(names.Select(n => (JsonNode)new JsonObject
            {
                ["name"] = n,
                ["in"] = n is "name" or "namespace" ? "path" : "query",
                ["schema"] = new JsonObject { ["type"] = "string" },
            }).ToArray());
            var schemaName = $"{reversed}.{version}.{t.Kind}";
            var reference = new JsonObject { ["$ref"] = $"#/components/schemas/{schemaName}" };
            JsonObject Op(string action, JsonArray parameters, bool patch = false) => new()
            {
                ["operationId"] = action + t.Kind,
                ["parameters"] = parameters,
                ["requestBody"] = patch
                    ? new JsonObject
                    {
                        ["content"] = new JsonObject
                        {
                            ["application/json-patch+json"] = new JsonObject { ["schema"] = new JsonObject { ["type"] = "object" } },
                            ["application/merge-patch+json"] = new JsonObject { ["schema"] = new JsonObject { ["type"] = "object" } },
                            ["application/apply-patch+yaml"] = new JsonObject { ["schema"] = new JsonObject { ["type"] = "object" } },
                        },
                    }
                    : null,
                ["responses"] = new JsonObject { ["200"] = new JsonObject { ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = reference.DeepClone() } } } },
                ["x-kubernetes-action"] = action,
                ["x-kubernetes-group-version-kind"] = Gvk(),
            };
            var prefix = $"/apis/{group}/{version}" + (t.Namespaced ? "/namespaces/{namespace}" : "");
            paths[$"{prefix}/{t.Plural}"] = new JsonObject
            {
                ["get"] = Op("list", Params("namespace", "labelSelector", "watch", "resourceVersion")),
                ["post"] = Op("post", Params("namespace", "dryRun", "fieldManager", "fieldValidation")),
            };
            paths[$"{prefix}/{t.Plural}/{{name}}"] = new JsonObject
            {
                ["get"] = Op("get", Params("name", "namespace")),
                ["put"] = Op("put", Params("name", "namespace", "dryRun", "fieldManager", "fieldValidation")),
                ["patch"] = Op("patch", Params("name", "namespace", "dryRun", "fieldManager", "fieldValidation", "force"), patch: true),
                ["delete"] = Op("delete", Params("name", "namespace")),
            };
            var schema = t.Schema?.DeepClone().AsObject() ?? new JsonObject { ["type"] = "object" };
            schema["x-kubernetes-group-version-kind"] = new JsonArray(Gvk());
            schemas[schemaName] = schema;
        }

        return new JsonObject
        {
            ["openapi"] = "3.0.0",
            ["info"] = new JsonObject { ["title"] = "Kubernetes CRD Swagger", ["version"] = "v0.1.0" },
            ["paths"] = paths,
            ["components"] = new JsonObject { ["schemas"] = schemas },
        };
    }

    // ---- helpers ----

    private static async Task<JsonObject> ReadBodyAsync(HttpContext ctx)
    {
        var text = await ReadTextAsync(ctx);
        try
        {
            return JsonNode.Parse(text) as JsonObject ?? throw new ApiError(400, "BadRequest", "the request body is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new ApiError(400, "BadRequest", $"the request body is not JSON: {e.Message}");
        }
    }

    private static async Task<string> ReadTextAsync(HttpContext ctx)
    {
        using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
        return await reader.ReadToEndAsync(ctx.RequestAborted);
    }

    private static async Task WriteJsonAsync(HttpContext ctx, int code, JsonNode body)
    {
        ctx.Response.StatusCode = code;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(body.ToJsonString(), ctx.RequestAborted);
    }

    private static JsonObject StatusJson(int code, string reason, string message, JsonObject? details) => new()
    {
        ["kind"] = "Status",
        ["apiVersion"] = "v1",
        ["metadata"] = new JsonObject(),
        ["status"] = "Failure",
        ["message"] = message,
        ["reason"] = reason,
        ["details"] = details,
        ["code"] = code,
    };

    private static void CheckKind(ResourceType type, JsonObject body)
    {
        if ((string?)body["kind"] is { } kind && kind != type.Kind)
        {
            throw new ApiError(400, "BadRequest", $"the kind of the object ({kind}) does not match the resource {type.GroupResource} ({type.Kind})");
        }

        if ((string?)body["apiVersion"] is { } apiVersion && apiVersion != type.ApiVersion)
        {
            throw new ApiError(400, "BadRequest", $"the API version in the data ({apiVersion}) does not match the expected API version ({type.ApiVersion})");
        }

        body["kind"] = type.Kind;
        body["apiVersion"] = type.ApiVersion;
    }

    /// <summary>Re-parses so that every value is element-backed (numbers then convert to any numeric type).</summary>
    private static JsonObject Normalize(JsonObject obj) => JsonNode.Parse(obj.ToJsonString())!.AsObject();

    private static List<string> Finalizers(JsonObject obj) =>
        (obj["metadata"]?["finalizers"] as JsonArray)?.Select(f => (string?)f ?? "").ToList() ?? [];

    private static JsonObject WithoutMetaAndStatus(JsonObject obj)
    {
        var copy = (JsonObject)obj.DeepClone();
        copy.Remove("metadata");
        copy.Remove("status");
        return copy;
    }

    private string NextResourceVersion()
    {
        _resourceVersion++;
        return _resourceVersion.ToString(CultureInfo.InvariantCulture);
    }

    private string Now() => _options.Time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Key(ResourceType type, string ns, string name) => $"{type.GroupResource}|{ns}|{name}";

    private static ApiError NotFound(ResourceType type, string name) =>
        new(404, "NotFound", $"{type.GroupResource} \"{name}\" not found", new JsonObject { ["name"] = name, ["group"] = type.Group, ["kind"] = type.Plural });

    private static ApiError Conflict(ResourceType type, string name, string why) =>
        new(409, "Conflict", $"Operation cannot be fulfilled on {type.GroupResource} \"{name}\": {why}",
            new JsonObject { ["name"] = name, ["group"] = type.Group, ["kind"] = type.Plural });

    private static ApiError Invalid(ResourceType type, string name, IReadOnlyList<SchemaError> errors) =>
        new(422, "Invalid", $"{type.Kind}.{type.Group} \"{name}\" is invalid: {string.Join(", ", errors)}",
            new JsonObject
            {
                ["name"] = name,
                ["group"] = type.Group,
                ["kind"] = type.Kind,
                ["causes"] = new JsonArray(errors.Select(e => (JsonNode)new JsonObject { ["reason"] = e.Type, ["message"] = e.Message, ["field"] = e.Field }).ToArray()),
            });

    // \z, not $: kube-apiserver's Go regexp ends '$' at the end of the text; .NET's '$' also matches before a final "\n".
    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\z")]
    private static partial Regex DnsSubdomain();

    private sealed record HistoryRecord(long ResourceVersion, string EventType, ResourceType Type, JsonObject Object, JsonObject? Previous);

    private sealed class Watch(ResourceType type, string ns, Selector selector, string from)
    {
        public ResourceType Type { get; } = type;

        public string FromResourceVersion { get; } = from;

        public Channel<string> Lines { get; } = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });

        public bool Abort { get; set; }

        public string Token { get; init; } = "";

        public string SelectorText { get; init; } = "";

        public bool Wants(ResourceType t, JsonObject obj) =>
            t == Type && (ns.Length == 0 || (string?)obj["metadata"]?["namespace"] == ns) && selector.Matches(obj);

        /// <summary>The event this watch sees for a change, or null when the object is outside its selector before and after.</summary>
        public string? EventFor(ResourceType t, string eventType, JsonObject obj, JsonObject? previous)
        {
            var now = Wants(t, obj);
            if (eventType != "MODIFIED" || previous is null)
            {
                return now ? eventType : null;
            }

            var before = Wants(t, previous);
            return (before, now) switch
            {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                _ => null,
            };
        }
    }

    private sealed class RetryPatch : Exception;

    private sealed class ApiError(int code, string reason, string message, JsonObject? details = null) : Exception(message)
    {
        public int Code { get; } = code;

        public string Reason { get; } = reason;

        public JsonObject? Details { get; } = details;
    }
}

/// <summary>Label selectors: k=v, k==v, k!=v, k, !k, and the set-based k in (a,b), k notin (a,b).</summary>
internal sealed partial class Selector
{
    private readonly List<Func<JsonObject?, bool>> _terms = [];

    [GeneratedRegex(@"^\s*(?<key>[^\s!=,()]+)\s+(?<op>in|notin)\s*\((?<values>[^)]*)\)\s*$")]
    private static partial Regex SetTerm();

    /// <summary>Splits on commas outside parentheses.</summary>
    private static IEnumerable<string> Terms(string text)
    {
        var depth = 0;
        var start = 0;
        for (var i = 0; i < text.Length; i++)
        {
            depth += text[i] switch { '(' => 1, ')' => -1, _ => 0 };
            if (text[i] == ',' && depth == 0)
            {
                yield return text[start..i].Trim();
                start = i + 1;
            }
        }

        yield return text[start..].Trim();
    }

    public static Selector Parse(string? text)
    {
        var s = new Selector();
        foreach (var raw in Terms(text ?? "").Where(t => t.Length > 0))
        {
            if (SetTerm().Match(raw) is { Success: true } set)
            {
                var key = set.Groups["key"].Value;
                var values = set.Groups["values"].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
                var isIn = set.Groups["op"].Value == "in";
                s._terms.Add(l => (string?)l?[key] is { } v ? values.Contains(v) == isIn : !isIn);
            }
            else if (raw.Contains("!=", StringComparison.Ordinal))
            {
                var (k, v) = Split(raw, "!=");
                s._terms.Add(l => (string?)l?[k] != v);
            }
            else if (raw.Contains('='))
            {
                var (k, v) = raw.Contains("==", StringComparison.Ordinal) ? Split(raw, "==") : Split(raw, "=");
                s._terms.Add(l => (string?)l?[k] == v);
            }
            else if (raw.StartsWith('!'))
            {
                var k = raw[1..];
                s._terms.Add(l => l?.ContainsKey(k) != true);
            }
            else
            {
                s._terms.Add(l => l?.ContainsKey(raw) == true);
            }
        }

        return s;
    }

    public bool Matches(JsonObject obj) => _terms.All(t => t(obj["metadata"]?["labels"] as JsonObject));

    private static (string, string) Split(string raw, string op)
    {
        var i = raw.IndexOf(op, StringComparison.Ordinal);
        return (raw[..i].Trim(), raw[(i + op.Length)..].Trim());
    }
}

internal static class JsonObjectExtensions
{
    public static JsonObject Also(this JsonObject o, Action<JsonObject> change)
    {
        change(o);
        return o;
    }
}

using System.Text.Json.Nodes;

namespace Hypercore.Kubernetes.TestServer;

/// <summary>RFC 7386 JSON merge patch and the RFC 6902 JSON patch operations kubectl sends.</summary>
public static class JsonPatches
{
    public static JsonNode? Merge(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject patchObj)
        {
            return patch?.DeepClone();
        }

        var result = target as JsonObject ?? new JsonObject();
        foreach (var (name, value) in patchObj)
        {
            if (value is null)
            {
                result.Remove(name);
            }
            else
            {
                var merged = Merge(result[name]?.DeepClone(), value);
                result[name] = merged;
            }
        }

        return result;
    }

    /// <exception cref="InvalidOperationException">an operation does not apply (the server answers 422).</exception>
    public static JsonNode ApplyJsonPatch(JsonNode target, JsonArray ops)
    {
        foreach (var op in ops.OfType<JsonObject>())
        {
            var kind = (string?)op["op"];
            var path = (string?)op["path"] ?? throw new InvalidOperationException("json patch operation without path");
            switch (kind)
            {
                case "add":
                    Set(target, path, op["value"]?.DeepClone(), insert: true);
                    break;
                case "replace":
                    Get(target, path);
                    Set(target, path, op["value"]?.DeepClone(), insert: false);
                    break;
                case "remove":
                    Remove(target, path);
                    break;
                case "test":
                    if (!JsonNode.DeepEquals(Get(target, path), op["value"]))
                    {
                        throw new InvalidOperationException($"test operation at {path} failed");
                    }

                    break;
                default:
                    throw new InvalidOperationException($"json patch operation \"{kind}\" is not supported");
            }
        }

        return target;
    }

    private static string[] Split(string path) =>
        path.Split('/').Skip(1).Select(p => p.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToArray();

    private static JsonNode? Get(JsonNode root, string path)
    {
        JsonNode? node = root;
        foreach (var part in Split(path))
        {
            node = node switch
            {
                JsonObject o when o.ContainsKey(part) => o[part],
                JsonArray a when int.TryParse(part, out var i) && i >= 0 && i < a.Count => a[i],
                _ => throw new InvalidOperationException($"path {path} does not exist"),
            };
        }

        return node;
    }

    private static void Set(JsonNode root, string path, JsonNode? value, bool insert)
    {
        var parts = Split(path);
        var parent = parts.Length == 1 ? root : Get(root, "/" + string.Join('/', parts[..^1].Select(p => p.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal))));
        var last = parts[^1];
        switch (parent)
        {
            case JsonObject o:
                o[last] = value;
                break;
            case JsonArray a when last == "-":
                a.Add(value);
                break;
            case JsonArray a when int.TryParse(last, out var i) && i >= 0 && i <= a.Count:
                if (insert)
                {
                    a.Insert(i, value);
                }
                else
                {
                    a[i] = value;
                }

                break;
            default:
                throw new InvalidOperationException($"cannot set {path}");
        }
    }

    private static void Remove(JsonNode root, string path)
    {
        var parts = Split(path);
        var parent = parts.Length == 1 ? root : Get(root, "/" + string.Join('/', parts[..^1]));
        var last = parts[^1];
        var ok = parent switch
        {
            JsonObject o => o.Remove(last),
            JsonArray a when int.TryParse(last, out var i) && i >= 0 && i < a.Count => RemoveAt(a, i),
            _ => false,
        };
        if (!ok)
        {
            throw new InvalidOperationException($"path {path} does not exist");
        }
    }

    private static bool RemoveAt(JsonArray a, int i)
    {
        a.RemoveAt(i);
        return true;
    }
}

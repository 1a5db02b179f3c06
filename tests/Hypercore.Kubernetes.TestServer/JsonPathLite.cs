using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Hypercore.Kubernetes.TestServer;

/// <summary>
/// The JSONPath forms printer columns use: <c>.a.b</c>, <c>.a[0]</c> and <c>.a[?(@.k=="v")].b</c>.
/// </summary>
public static partial class JsonPathLite
{
    [GeneratedRegex(@"\.(?<name>[A-Za-z0-9_\-]+)|\[(?<index>\d+)\]|\[\?\(@\.(?<fk>[A-Za-z0-9_\-]+)==""(?<fv>[^""]*)""\)\]")]
    private static partial Regex Step();

    public static IReadOnlyList<JsonNode?> Evaluate(JsonNode? root, string path)
    {
        IReadOnlyList<JsonNode?> current = [root];
        var consumed = 0;
        foreach (Match m in Step().Matches(path))
        {
            if (m.Index != consumed)
            {
                throw new FormatException($"unsupported JSONPath {path}");
            }

            consumed = m.Index + m.Length;
            if (m.Groups["name"].Success)
            {
                current = current.OfType<JsonObject>().Where(o => o.ContainsKey(m.Groups["name"].Value)).Select(o => o[m.Groups["name"].Value]).ToList();
            }
            else if (m.Groups["index"].Success)
            {
                var i = int.Parse(m.Groups["index"].Value, System.Globalization.CultureInfo.InvariantCulture);
                current = current.OfType<JsonArray>().Where(a => i < a.Count).Select(a => a[i]).ToList();
            }
            else
            {
                var (k, v) = (m.Groups["fk"].Value, m.Groups["fv"].Value);
                current = current.OfType<JsonArray>().SelectMany(a => a).OfType<JsonObject>()
                    .Where(o => o[k] is JsonValue val && val.ToString() == v).Select(o => (JsonNode?)o).ToList();
            }
        }

        if (consumed != path.Length)
        {
            throw new FormatException($"unsupported JSONPath {path}");
        }

        return current;
    }
}

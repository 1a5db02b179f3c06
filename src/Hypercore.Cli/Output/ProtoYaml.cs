using System.Text.Json;
using YamlDotNet.Serialization;

namespace Hypercore.Cli.Output;

/// <summary>YAML of a protobuf message, made from its protobuf JSON so field names and value encodings match -o json.</summary>
internal static class ProtoYaml
{
    private static readonly ISerializer Serializer = new SerializerBuilder()
        .WithQuotingNecessaryStrings()
        .DisableAliases()
        .Build();

    public static string FromJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return Serializer.Serialize(ToObject(doc.RootElement));
    }

    private static object? ToObject(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => ToObject(p.Value), StringComparer.Ordinal),
        JsonValueKind.Array => e.EnumerateArray().Select(ToObject).ToList(),
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out var l) ? l : e.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => null,
    };
}

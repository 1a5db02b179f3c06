using System.Text;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Hypercore.Bootstrap;

/// <summary>
/// What spec.metadata may hold: flintlock's cloud-init keys (served to the guest as the NoCloud files of the same
/// name) and extension keys "x-…", at most <see cref="MaxTotalBytes"/> in all. Checked by the spec validator, so
/// every writer refuses the same things before anything is stored.
/// </summary>
public static partial class GuestMetadataRules
{
    public const string MetaData = "meta-data";
    public const string UserData = "user-data";
    public const string VendorData = "vendor-data";
    public const string NetworkConfig = "network-config";

    /// <summary>Keys and values (UTF-8) together; a seed disk and MMDS both hold this comfortably.</summary>
    public const int MaxTotalBytes = 64 * 1024;

    public static readonly IReadOnlyList<string> KnownKeys = [MetaData, UserData, VendorData, NetworkConfig];

    // Lowercase only: the keys become file names on a FAT seed disk, where case does not tell names apart.
    [GeneratedRegex("^x-[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?\\z")]
    private static partial Regex ExtensionKey();

    public static bool IsAllowedKey(string key) => KnownKeys.Contains(key, StringComparer.Ordinal) || ExtensionKey().IsMatch(key);

    /// <summary>Every problem of <paramref name="metadata"/>, each naming its key; empty when it can be served.</summary>
    public static IReadOnlyList<string> Validate(IReadOnlyDictionary<string, string> metadata)
    {
        var errors = new List<string>();
        foreach (var key in metadata.Keys.Order(StringComparer.Ordinal))
        {
            if (!IsAllowedKey(key))
            {
                errors.Add($"metadata key \"{key}\" is not one of {string.Join(", ", KnownKeys)}; other keys must start with \"x-\" " +
                    "followed by lowercase letters, digits, '.', '_' or '-' (e.g. x-role)");
            }
        }

        var total = metadata.Sum(kv => (long)Encoding.UTF8.GetByteCount(kv.Key) + Encoding.UTF8.GetByteCount(kv.Value));
        if (total > MaxTotalBytes)
        {
            var largest = metadata.MaxBy(kv => Encoding.UTF8.GetByteCount(kv.Value)).Key;
            errors.Add($"metadata is {total} bytes in total (largest: \"{largest}\"); at most {MaxTotalBytes} bytes (64 KiB) are served to the guest: " +
                "fetch large content from the guest instead (e.g. a URL in user-data)");
        }

        foreach (var key in new[] { MetaData, NetworkConfig })
        {
            if (metadata.TryGetValue(key, out var text) && text.Trim().Length > 0 && MappingProblem(text) is { } problem)
            {
                errors.Add($"metadata[\"{key}\"] {problem}");
            }
        }

        return errors;
    }

    /// <summary>Null when <paramref name="yaml"/> is one YAML (or JSON) mapping, else what is wrong with it.</summary>
    internal static string? MappingProblem(string yaml)
    {
        try
        {
            var stream = Load(yaml);
            if (stream.Documents.Count != 1)
            {
                return $"holds {stream.Documents.Count} YAML documents; cloud-init reads one mapping";
            }

            return stream.Documents[0].RootNode is YamlMappingNode
                ? null
                : "is not a YAML mapping (key: value lines, or a JSON object)";
        }
        catch (YamlException ex)
        {
            return $"is not valid YAML: {ex.Message} (line {ex.Start.Line}, column {ex.Start.Column})";
        }
    }

    internal static YamlStream Load(string yaml)
    {
        var stream = new YamlStream();
        using var reader = new StringReader(yaml);
        stream.Load(reader);
        return stream;
    }
}

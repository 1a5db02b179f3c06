using System.Text;
using System.Text.Json;

namespace Hypercore.Images.Registry;

/// <summary>Basic credentials per registry, read from a docker <c>config.json</c> (<c>auths</c> section).</summary>
public sealed class RegistryCredentials
{
    private readonly Dictionary<string, (string User, string Password)> _byRegistry;

    private RegistryCredentials(Dictionary<string, (string, string)> byRegistry) => _byRegistry = byRegistry;

    public static RegistryCredentials Empty { get; } = new(new Dictionary<string, (string, string)>(StringComparer.OrdinalIgnoreCase));

    /// <summary>Reads the file; a missing path means no credentials, a malformed file throws with the reason.</summary>
    public static RegistryCredentials Load(string? path)
    {
        if (string.IsNullOrEmpty(path) || !File.Exists(path)) return Empty;
        var map = new Dictionary<string, (string, string)>(StringComparer.OrdinalIgnoreCase);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (!doc.RootElement.TryGetProperty("auths", out var auths)) return Empty;
            foreach (var entry in auths.EnumerateObject())
            {
                string? user = null, password = null;
                if (entry.Value.TryGetProperty("auth", out var auth) && auth.GetString() is { Length: > 0 } encoded)
                {
                    var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(encoded));
                    var colon = decoded.IndexOf(':', StringComparison.Ordinal);
                    if (colon < 0) throw new FormatException($"auths.{entry.Name}.auth is not base64(user:password)");
                    (user, password) = (decoded[..colon], decoded[(colon + 1)..]);
                }
                else if (entry.Value.TryGetProperty("username", out var u) && entry.Value.TryGetProperty("password", out var p))
                {
                    (user, password) = (u.GetString(), p.GetString());
                }
                if (user is not null && password is not null) map[Normalize(entry.Name)] = (user, password);
            }
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new FormatException($"registry credentials file {path}: {e.Message}", e);
        }
        return new RegistryCredentials(map);
    }

    public bool TryGet(string registry, out string user, out string password)
    {
        if (_byRegistry.TryGetValue(Normalize(registry), out var c) ||
            (registry == "docker.io" && _byRegistry.TryGetValue("index.docker.io", out c)))
        {
            (user, password) = c;
            return true;
        }
        user = password = "";
        return false;
    }

    // docker writes keys as "https://index.docker.io/v1/" or plain "host:port".
    private static string Normalize(string key)
    {
        var k = key;
        if (k.StartsWith("https://", StringComparison.OrdinalIgnoreCase)) k = k[8..];
        else if (k.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) k = k[7..];
        var slash = k.IndexOf('/', StringComparison.Ordinal);
        return slash >= 0 ? k[..slash] : k;
    }
}

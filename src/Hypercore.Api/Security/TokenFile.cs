using System.Security.Cryptography;
using System.Text;

namespace Hypercore.Api.Security;

/// <summary>
/// The token file: one <c>TOKEN IDENTITY</c> pair per line, blank lines and lines starting with '#' ignored.
/// Tokens are kept as SHA-256 digests and compared with <see cref="CryptographicOperations.FixedTimeEquals"/> against
/// every entry, so neither a token's length nor how many leading bytes match shows in the time a check takes.
/// </summary>
public sealed class TokenFile
{
    /// <summary>Shortest token accepted: anything shorter is guessable.</summary>
    public const int MinimumTokenLength = 16;

    private readonly List<(byte[] Digest, string Identity)> _entries;

    private TokenFile(List<(byte[] Digest, string Identity)> entries) => _entries = entries;

    public static TokenFile Empty { get; } = new([]);

    public int Count => _entries.Count;

    /// <summary>Parses the file's text; problems name the line. Never echoes a token.</summary>
    public static TokenFile Parse(string text, out List<string> errors)
    {
        errors = [];
        var entries = new List<(byte[], string)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2)
            {
                errors.Add($"line {i + 1}: expected \"TOKEN IDENTITY\" (two words), got {parts.Length} word(s)");
                continue;
            }

            if (parts[0].Length < MinimumTokenLength)
            {
                errors.Add($"line {i + 1}: the token of identity \"{parts[1]}\" is shorter than {MinimumTokenLength} characters");
                continue;
            }

            if (!seen.Add(parts[0]))
            {
                errors.Add($"line {i + 1}: the token of identity \"{parts[1]}\" is listed twice");
                continue;
            }

            entries.Add((Digest(parts[0]), parts[1]));
        }

        return new TokenFile(entries);
    }

    /// <summary>The identity the token belongs to, or null. Takes the same time whichever entry matches, or none.</summary>
    public string? Find(string token)
    {
        var digest = Digest(token);
        string? found = null;
        foreach (var (candidate, identity) in _entries)
        {
            if (CryptographicOperations.FixedTimeEquals(candidate, digest))
            {
                found ??= identity;
            }
        }

        return found;
    }

    private static byte[] Digest(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));
}

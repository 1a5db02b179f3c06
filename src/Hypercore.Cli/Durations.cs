using System.Globalization;
using System.Text.RegularExpressions;

namespace Hypercore.Cli;

/// <summary>Parses durations as people type them: "90" (seconds), "90s", "2m", "1h30m", "500ms", or "00:01:30".</summary>
internal static partial class Durations
{
    [GeneratedRegex(@"^(?:(?<h>\d+)h)?(?:(?<m>\d+)m(?!s))?(?:(?<s>\d+(?:\.\d+)?)s)?(?:(?<ms>\d+)ms)?\z")]
    private static partial Regex Units();

    public static bool TryParse(string text, out TimeSpan value)
    {
        value = default;
        text = text.Trim();
        if (text.Length == 0)
        {
            return false;
        }

        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds))
        {
            value = TimeSpan.FromSeconds(seconds);
            return seconds > 0;
        }

        if (text.Contains(':', StringComparison.Ordinal))
        {
            return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out value) && value > TimeSpan.Zero;
        }

        var match = Units().Match(text);
        if (!match.Success)
        {
            return false;
        }

        value = TimeSpan.FromHours(Number(match, "h")) + TimeSpan.FromMinutes(Number(match, "m")) +
                TimeSpan.FromSeconds(Number(match, "s")) + TimeSpan.FromMilliseconds(Number(match, "ms"));
        return value > TimeSpan.Zero;
    }

    public static string Format(TimeSpan t) => t switch
    {
        { TotalSeconds: < 1 } => $"{t.TotalMilliseconds:0}ms",
        { TotalMinutes: < 2 } => $"{t.TotalSeconds:0.#}s",
        { TotalHours: < 2 } => $"{t.TotalMinutes:0.#}m",
        _ => $"{t.TotalHours:0.#}h",
    };

    private static double Number(Match m, string group) =>
        m.Groups[group].Success ? double.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture) : 0;
}

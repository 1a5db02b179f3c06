using System.Globalization;
using System.Text.RegularExpressions;

namespace Hypercore.Daemon.Configuration;

/// <summary>How a setting's text is read. Text settings are checked by the validators; the others here, before binding.</summary>
public enum SettingKind
{
    Text,

    /// <summary>A whole number within <see cref="DaemonSetting.Min"/>..<see cref="DaemonSetting.Max"/>.</summary>
    WholeNumber,

    /// <summary>A positive duration as people type it: "90s", "2m", "1h30m", "500ms", "90" (seconds).</summary>
    Duration,

    /// <summary>A positive decimal number up to <see cref="DaemonSetting.Max"/>, e.g. "1.5" (admission: cpu-overcommit-ratio).</summary>
    PositiveNumber,
}

/// <summary>
/// Reads typed settings (flags and TOML keys alike) before the configuration binder sees them, so a bad value is
/// reported in the user's terms ("reconcile-workers: expected a whole number from 1 to 1024, got 'abc'") instead of
/// as a failed conversion to a .NET type, and a duration can be written "30s" rather than "00:00:30".
/// </summary>
public static partial class SettingValues
{
    /// <summary>Rewrites every typed value in <paramref name="settings"/> to the form the binder reads; throws naming every bad one.</summary>
    public static Dictionary<string, string?> Normalize(IReadOnlyDictionary<string, string?> settings)
    {
        var result = new Dictionary<string, string?>(settings, StringComparer.OrdinalIgnoreCase);
        var errors = new List<string>();
        foreach (var setting in DaemonSettings.All.Where(s => s.Kind != SettingKind.Text))
        {
            if (!result.TryGetValue(setting.ConfigKey, out var text) || text is null)
            {
                continue;
            }

            if (TryRead(setting, text, out var normalized, out var error))
            {
                result[setting.ConfigKey] = normalized;
            }
            else
            {
                errors.Add(error);
            }
        }

        return errors.Count == 0 ? result : throw new SettingsException(string.Join(Environment.NewLine + "vistarad: ", errors));
    }

    public static bool TryRead(DaemonSetting setting, string text, out string normalized, out string error)
    {
        normalized = text;
        error = "";
        switch (setting.Kind)
        {
            case SettingKind.WholeNumber:
                if (long.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) && n >= setting.Min && n <= setting.Max)
                {
                    normalized = n.ToString(CultureInfo.InvariantCulture);
                    return true;
                }

                error = $"{setting.Name}: expected a whole number from {setting.Min} to {setting.Max}, got '{text}'";
                return false;
            case SettingKind.Duration:
                if (TryParseDuration(text, out var duration))
                {
                    normalized = duration.ToString("c", CultureInfo.InvariantCulture);
                    return true;
                }

                error = $"{setting.Name}: expected a duration such as 30s, 2m or 1h30m, got '{text}'";
                return false;
            case SettingKind.PositiveNumber:
                if (double.TryParse(text.Trim(), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var d) && d > 0 && d <= setting.Max)
                {
                    normalized = d.ToString("R", CultureInfo.InvariantCulture);
                    return true;
                }

                error = $"{setting.Name}: expected a number greater than 0 and at most {setting.Max}, such as 1.5, got '{text}'";
                return false;
            default:
                return true;
        }
    }

    [GeneratedRegex(@"^(?:(?<h>\d+)h)?(?:(?<m>\d+)m(?!s))?(?:(?<s>\d+(?:\.\d+)?)s)?(?:(?<ms>\d+)ms)?\z")]
    private static partial Regex Units();

    internal static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = default;
        text = text.Trim();
        if (text.Length == 0)
        {
            return false;
        }

        if (double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds))
        {
            value = TimeSpan.FromSeconds(seconds);
            return seconds > 0;
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

    private static double Number(Match m, string group) =>
        m.Groups[group].Success ? double.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture) : 0;
}

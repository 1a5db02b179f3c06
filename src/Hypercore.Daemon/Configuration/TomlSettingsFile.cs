using System.Globalization;
using Tomlyn;
using Tomlyn.Model;

namespace Hypercore.Daemon.Configuration;

/// <summary>A settings problem found before the host is built (bad config file, bad flag). Exit code 2.</summary>
public sealed class SettingsException(string message) : Exception(message);

/// <summary>
/// Reads the daemon's TOML file: top-level keys named like the flags (<c>grpc-endpoint = "localhost:9090"</c>).
/// An unknown key, a table, or a value that is not a string, number or boolean is an error that names the key.
/// </summary>
public static class TomlSettingsFile
{
    /// <summary>Configuration key → value for every setting the file gives.</summary>
    public static IReadOnlyDictionary<string, string?> Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new SettingsException($"config {path}: cannot read: {ex.Message}");
        }

        return Parse(text, path);
    }

    public static IReadOnlyDictionary<string, string?> Parse(string text, string source)
    {
        TomlTable table;
        try
        {
            table = DaemonTomlContext.Parse(text);
        }
        catch (TomlException ex)
        {
            throw new SettingsException($"config {source}: not valid TOML: {ex.Message}");
        }

        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in table)
        {
            if (key == SecuritySettings.IdentitiesKey)
            {
                AddIdentities(value, source, values);
                continue;
            }

            var setting = DaemonSettings.Find(key)
                ?? throw new SettingsException($"config {source}: unknown key \"{key}\"; known keys: {string.Join(", ", DaemonSettings.All.Select(s => s.Name))}");
            values[setting.ConfigKey] = value switch
            {
                string s => s,
                bool b => b ? "true" : "false",
                long or double => Convert.ToString(value, CultureInfo.InvariantCulture),
                _ => throw new SettingsException($"config {source}: key \"{key}\" must be a string, got a {DescribeType(value)}"),
            };
        }

        return values;
    }

    /// <summary>
    /// <c>[[identities]]</c> tables (name, namespaces, write) flattened into configuration keys
    /// (Daemon:Identities:0:Name, …) that bind to <see cref="DaemonOptions.Identities"/>.
    /// </summary>
    private static void AddIdentities(object? value, string source, Dictionary<string, string?> values)
    {
        if (value is not TomlTableArray tables)
        {
            throw new SettingsException($"config {source}: \"{SecuritySettings.IdentitiesKey}\" must be [[identities]] tables, got a {DescribeType(value)}");
        }

        var i = 0;
        foreach (var identity in tables)
        {
            var prefix = $"Daemon:Identities:{i}:";
            foreach (var (key, item) in identity)
            {
                switch (key, item)
                {
                    case ("name", string name):
                        values[prefix + "Name"] = name;
                        break;
                    case ("write", bool write):
                        values[prefix + "Write"] = write ? "true" : "false";
                        break;
                    case ("namespaces", TomlArray namespaces) when namespaces.All(n => n is string):
                        for (var j = 0; j < namespaces.Count; j++)
                        {
                            values[$"{prefix}Namespaces:{j}"] = (string)namespaces[j]!;
                        }

                        break;
                    default:
                        throw new SettingsException($"config {source}: [[identities]] #{i + 1}: \"{key}\" is not one of name (string), " +
                            "namespaces (array of strings, \"*\" for all) or write (boolean)");
                }
            }

            i++;
        }
    }

    private static string DescribeType(object? value) => value switch
    {
        TomlTable => "table",
        TomlArray or TomlTableArray => "array",
        null => "empty value",
        _ => value.GetType().Name,
    };
}

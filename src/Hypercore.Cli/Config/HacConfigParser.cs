using System.Globalization;
using Hypercore.Client;
using Tomlyn;
using Tomlyn.Model;

namespace Hypercore.Cli.Config;

/// <summary>
/// Reads a hac.toml. Strict on purpose: an unknown key is almost always a typo ("memmory = 512") that would
/// otherwise silently boot a VM with the default, so it is an error naming the key.
/// </summary>
internal static class HacConfigParser
{
    private static readonly string[] TopLevelKeys =
        ["name", "namespace", "image", "memory", "cpu", "disk", "network", "provider", "restart_policy", "kernel", "metadata", "labels",
            "readiness", "liveness", "startup"];

    private static readonly string[] ProbeKeys = ["console", "tcp", "http", "initial_delay", "period", "timeout", "failure_threshold"];

    private static readonly string[] KernelKeys = ["cmdline", "initrd"];

    /// <exception cref="UsageException">the file is missing, is not TOML, or holds an unknown key or a wrong type.</exception>
    public static HacConfig Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"cannot read config {path}: {ex.Message}", ex);
        }

        return Parse(text, path);
    }

    public static HacConfig Parse(string toml, string sourceName)
    {
        TomlTable root;
        try
        {
            root = HacTomlContext.Parse(toml, sourceName);
        }
        catch (TomlException ex)
        {
            throw new UsageException($"{sourceName}: invalid TOML: {ex.Message.Trim()}", ex);
        }

        var reader = new TableReader(root, sourceName, prefix: "");
        reader.RejectUnknown(TopLevelKeys);
        var kernel = reader.Table("kernel");
        kernel?.RejectUnknown(KernelKeys);

        var restartPolicy = reader.String("restart_policy") is { } rp
            ? RestartPolicies.Normalize(rp) ?? throw new UsageException(
                $"{sourceName}: restart_policy must be one of {string.Join(", ", RestartPolicies.All)}, got \"{rp}\"")
            : null;

        return new HacConfig
        {
            Name = reader.String("name"),
            Namespace = reader.String("namespace"),
            Image = reader.String("image"),
            Memory = reader.Int("memory", min: 1),
            Cpu = reader.Int("cpu", min: 1),
            Disk = reader.Int("disk", min: 0),
            Network = reader.Int("network", min: 0),
            Provider = reader.String("provider"),
            RestartPolicy = restartPolicy,
            Initrd = kernel?.String("initrd"),
            Cmdline = kernel?.Map("cmdline", bareFlags: true) ?? new Dictionary<string, string>(),
            Metadata = reader.Map("metadata", bareFlags: false) ?? new Dictionary<string, string>(),
            Labels = reader.Map("labels", bareFlags: false) ?? new Dictionary<string, string>(),
            Readiness = ReadProbe(reader.Table("readiness"), sourceName, "readiness"),
            Liveness = ReadProbe(reader.Table("liveness"), sourceName, "liveness"),
            Startup = ReadProbe(reader.Table("startup"), sourceName, "startup"),
        };
    }

    /// <summary>Guest health: <c>[readiness]</c>/<c>[liveness]</c>/<c>[startup]</c> with one of console, tcp, http and the timing in seconds.</summary>
    private static Contracts.VmApi.Probe? ReadProbe(TableReader? table, string source, string name)
    {
        if (table is null)
        {
            return null;
        }

        table.RejectUnknown(ProbeKeys);
        var console = table.String("console");
        var tcp = table.Int("tcp", min: 1);
        var http = table.String("http");
        var checks = (console is null ? 0 : 1) + (tcp is null ? 0 : 1) + (http is null ? 0 : 1);
        if (checks != 1)
        {
            throw new UsageException($"{source}: [{name}] needs exactly one of console = \"regex\", tcp = PORT or http = \"PORT/PATH\"");
        }

        return new Contracts.VmApi.Probe
        {
            Console = console is null ? null : new Contracts.VmApi.ConsoleProbe { Regex = console },
            TcpSocket = tcp is null ? null : new Contracts.VmApi.TcpSocketProbe { Port = tcp.Value },
            HttpGet = http is null ? null : Commands.ProbeFlags.ParseHttp($"{source}: {name}.http", http),
            InitialDelaySeconds = table.Int("initial_delay", min: 0) ?? 0,
            PeriodSeconds = table.Int("period", min: 1) ?? 0,
            TimeoutSeconds = table.Int("timeout", min: 1) ?? 0,
            FailureThreshold = table.Int("failure_threshold", min: 1) ?? 0,
        };
    }

    private sealed class TableReader(TomlTable table, string source, string prefix)
    {
        public void RejectUnknown(string[] known)
        {
            var unknown = table.Keys.Where(k => !known.Contains(k, StringComparer.Ordinal)).Order(StringComparer.Ordinal).ToList();
            if (unknown.Count > 0)
            {
                var names = string.Join(", ", unknown.Select(k => $"\"{prefix}{k}\""));
                throw new UsageException(
                    $"{source}: unknown key{(unknown.Count > 1 ? "s" : "")} {names} (allowed{(prefix.Length > 0 ? " in [" + prefix.TrimEnd('.') + "]" : "")}: {string.Join(", ", known)})");
            }
        }

        public string? String(string key)
        {
            if (!table.TryGetValue(key, out var value))
            {
                return null;
            }

            return value as string ?? throw WrongType(key, "a string", value);
        }

        public int? Int(string key, int min)
        {
            if (!table.TryGetValue(key, out var value))
            {
                return null;
            }

            if (value is not long number)
            {
                throw WrongType(key, "an integer", value);
            }

            if (number < min || number > int.MaxValue)
            {
                throw new UsageException($"{source}: {prefix}{key} must be {(min == 0 ? "zero or more" : "at least " + min)}, got {number}");
            }

            return (int)number;
        }

        public TableReader? Table(string key)
        {
            if (!table.TryGetValue(key, out var value))
            {
                return null;
            }

            return value is TomlTable t ? new TableReader(t, source, $"{prefix}{key}.") : throw WrongType(key, "a table", value);
        }

        /// <summary>
        /// A table of scalars as strings. Kernel command lines also take <c>quiet = true</c> for a bare flag
        /// (<c>false</c> leaves it out).
        /// </summary>
        public Dictionary<string, string>? Map(string key, bool bareFlags)
        {
            var sub = Table(key);
            if (sub is null)
            {
                return null;
            }

            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (k, v) in sub.Entries)
            {
                switch (v)
                {
                    case string s:
                        map[k] = s;
                        break;
                    case long n:
                        map[k] = n.ToString(CultureInfo.InvariantCulture);
                        break;
                    case double d:
                        map[k] = d.ToString(CultureInfo.InvariantCulture);
                        break;
                    case bool b when bareFlags:
                        if (b)
                        {
                            map[k] = "";
                        }

                        break;
                    case bool b:
                        map[k] = b ? "true" : "false";
                        break;
                    default:
                        throw sub.WrongType(k, "a string, number or boolean", v);
                }
            }

            return map;
        }

        private IEnumerable<KeyValuePair<string, object>> Entries => table;

        private UsageException WrongType(string key, string expected, object? value) =>
            new($"{source}: {prefix}{key} must be {expected}, got {Describe(value)}");

        private static string Describe(object? value) => value switch
        {
            null => "nothing",
            string s => $"the string \"{s}\"",
            long or double => $"the number {Convert.ToString(value, CultureInfo.InvariantCulture)}",
            bool b => b ? "true" : "false",
            TomlTable => "a table",
            TomlArray or TomlTableArray => "an array",
            _ => value.GetType().Name,
        };
    }
}

using System.Globalization;
using System.Text.Json;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// A MicroVM as the programs print it: protobuf JSON (lowerCamelCase; int64 as strings), from `vis -o json` or
/// the HTTP API. Read with System.Text.Json on purpose: the tests share no code with what they test.
/// </summary>
internal sealed class VmView
{
    private readonly JsonElement _root;

    private VmView(JsonElement root, string json)
    {
        _root = root;
        Json = json;
    }

    public string Json { get; }

    public string Id => Spec("id");

    public string Namespace => Spec("namespace");

    public string Uid => Spec("uid");

    public string Provider => Spec("provider");

    /// <summary>spec.state: the desired state (Running, Stopped, Paused).</summary>
    public string DesiredState => Spec("state");

    public string Phase => Status("phase");

    public int Pid => StatusInt("pid");

    public int RestartCount => StatusInt("restartCount");

    public string ConsoleLogPath => Status("consoleLogPath");

    // snapshots (issue 14)
    public string RestoredFrom => Status("restoredFrom");

    public static VmView Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement.Clone();
        if (root.TryGetProperty("microvm", out var inner))
        {
            root = inner; // a GetMicroVMResponse / CreateMicroVMResponse from the HTTP API
        }

        return new VmView(root, json);
    }

    /// <summary>The condition of that type, or null.</summary>
    public (string Status, string Reason, string Message)? Condition(string type)
    {
        if (!_root.TryGetProperty("status", out var status) || !status.TryGetProperty("conditions", out var conditions))
        {
            return null;
        }

        foreach (var c in conditions.EnumerateArray())
        {
            if (Text(c, "type") == type)
            {
                return (Text(c, "status"), Text(c, "reason"), Text(c, "message"));
            }
        }

        return null;
    }

    public override string ToString() => Json;

    private string Spec(string name) => _root.TryGetProperty("spec", out var spec) ? Text(spec, name) : "";

    private string Status(string name) => _root.TryGetProperty("status", out var status) ? Text(status, name) : "";

    private int StatusInt(string name) =>
        _root.TryGetProperty("status", out var status) && status.TryGetProperty(name, out var value)
            ? value.ValueKind == JsonValueKind.String ? int.Parse(value.GetString()!, CultureInfo.InvariantCulture) : value.GetInt32()
            : 0;

    private static string Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : "";
}

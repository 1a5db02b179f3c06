using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Hypercore.Cli.Output;
using Hypercore.Contracts.VmApi;
using YamlDotNet.Serialization;

namespace Hypercore.Cli.Tests.Output;

/// <summary>
/// ProtoYaml walks the JSON and drives YamlDotNet's emitter itself (Native AOT cannot compile the reflection-based
/// serializer). Its text must be exactly what that serializer printed for the same JSON, so `vis get -o yaml` does not
/// change under scripts that read it.
/// </summary>
public sealed class ProtoYamlTests
{
    // What `vis -o yaml` used before: JSON → dictionaries/lists/scalars → YamlDotNet's reflection-based serializer.
    private static readonly ISerializer Reference = new SerializerBuilder().WithQuotingNecessaryStrings().DisableAliases().Build();

    private static string ReferenceYaml(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return Reference.Serialize(ToObject(doc.RootElement));
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

    private static IEnumerable<string> Documents()
    {
        yield return "{}";
        yield return "[]";
        yield return "{\"a\":{},\"b\":[],\"c\":[{}],\"d\":[[]],\"e\":[[1,2],[\"x\"]]}";
        yield return "{\"n\":null,\"t\":true,\"f\":false,\"list\":[null,true,false]}";
        yield return "{\"i\":0,\"neg\":-42,\"big\":9007199254740993,\"d\":0.5,\"e\":1e300,\"tiny\":-2.5e-8,\"third\":0.3333333333333333,\"u64\":18446744073709551615}";
        // Strings a YAML reader would take for something else are quoted; keys go through the same rule.
        yield return "{\"s\":[\"\",\" \",\"true\",\"False\",\"null\",\"~\",\"123\",\"-1.5\",\"1e3\",\"0x1F\",\"0o17\",\".inf\",\".NaN\",\" lead\",\"trail \",\"yes\",\"on\",\"y\"]}";
        yield return "{\"123\":\"a\",\"true\":1,\"\":2,\" x\":3,\"null\":4}";
        yield return "{\"s\":[\"a: b\",\"- item\",\"#hash\",\"x #y\",\"[flow]\",\"{flow}\",\"*alias\",\"&anchor\",\"!tag\",\"%dir\",\"@at\",\"`tick\",\"'single'\",\"\\\"double\\\"\",\"|pipe\",\">gt\",\"a,b\",\"?q\"]}";
        yield return "{\"multi\":\"line one\\nline two\\n\",\"tab\":\"a\\tb\",\"cr\":\"a\\r\\nb\",\"ctl\":\"\\u0001\\u001f\",\"uni\":\"héllo — ☃ 😀\",\"bom\":\"\\ufeffx\",\"nel\":\"a\\u0085b\",\"ls\":\"a\\u2028b\"}";
        yield return "{\"long\":\"" + new string('x', 300) + " " + new string('y', 300) + "\"}";
        yield return "{\"cmdline\":{\"console\":\"ttyS0\",\"quiet\":\"\",\"panic\":\"-1\",\"reboot\":\"t\",\"ip\":\"10.0.0.2::10.0.0.1:255.255.255.0::eth0:off\"}}";
        yield return "[1,\"two\",{\"three\":[3]},[],{}]";
        yield return "\"just a string\"";
        yield return "7";
        yield return "null";
    }

    [TestCaseSource(nameof(Documents))]
    public void FromJson_IsByteForByteWhatTheReflectionSerializerPrinted(string json)
    {
        ProtoYaml.FromJson(json).Should().Be(ReferenceYaml(json));
    }

    [Test]
    public void FromJson_FullMicroVm_IsByteForByteWhatTheReflectionSerializerPrinted()
    {
        var vm = new MicroVM
        {
            Version = 3,
            Spec = new MicroVMSpec
            {
                Id = "web1", Namespace = "default", Vcpu = 2, MemoryInMb = 256, Provider = "qemu", Uid = "0b7c",
                Kernel = new Kernel { Image = "default", Cmdline = { ["console"] = "ttyS0", ["quiet"] = "", ["x"] = "true" } },
                Metadata = { ["user-data"] = "#cloud-config\nusers:\n  - name: ops\n", ["123"] = "no" },
                Labels = { ["app"] = "web", ["tier"] = "1" },
                CreatedAt = Timestamp.FromDateTimeOffset(new DateTimeOffset(2026, 11, 29, 23, 0, 0, TimeSpan.Zero)),
            },
            Status = new MicroVMStatus
            {
                Phase = "Running", Pid = 4242, ObservedGeneration = 7,
                Conditions = { new Condition { Type = "Ready", Status = "True", Reason = "Started", Message = "qemu: pid 4242 (started)" } },
            },
        };
        var json = new JsonFormatter(JsonFormatter.Settings.Default.WithFormatDefaultValues(true)).Format(vm);

        ProtoYaml.FromJson(json).Should().Be(ReferenceYaml(json));
    }
}

using Hypercore.Bootstrap;
using Hypercore.MicroVms;
using YamlDotNet.Serialization;

namespace Hypercore.Core.Tests.Bootstrap;

/// <summary>YamlText must print exactly what YamlDotNet's default serializer printed before it (the reflection path).</summary>
public sealed class YamlTextTests
{
    private static string Serializer(object value) => new SerializerBuilder().Build().Serialize(value);

    private static Dictionary<string, object> Map(params (string Key, object Value)[] entries)
    {
        var map = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var (key, value) in entries)
        {
            map[key] = value;
        }

        return map;
    }

    private static readonly string[] EdgeStrings =
    [
        "", " ", " leading", "trailing ", "true", "False", "yes", "no", "on", "off", "null", "Null", "~", "123", "-7",
        "0x1F", "0o17", "1e5", "3.14", ".inf", "-.Inf", ".nan", "2026-11-30", "12:30:45", "a: b", "a:b", "#comment", "a #b",
        "- dash", "-", "?", "? q", ":", "'single'", "\"double\"", "*alias", "&anchor", "!tag", "%percent", "@at", "`tick",
        "{flow}", "[list]", "a,b", "|", ">", "multi\nline", "multi\nline\n", "\n", "tab\there", "\ttab", "ctl\u0001char",
        "bell\u0007", "del\u007f", "héllo wörld", "日本語", "emoji 🚀", "nbsp\u00a0x", "line\u2028sep", "cr\rlf",
        "back\\slash", new string('x', 600), string.Join(' ', Enumerable.Repeat("word", 150)), "0f9c2d3e-uid", "web-1",
        "52:54:00:12:34:56", "10.0.0.2/24", "fd00::1", "fd00::2/64", "=", "<<", "!!str", "---", "...", "--- x", "a\"b'c",
    ];

    [Test]
    public void Emit_EdgeStringsAsValuesKeysAndListItems_MatchesTheSerializer()
    {
        foreach (var s in EdgeStrings)
        {
            var values = Map(("key", s));
            YamlText.Emit(values).Should().Be(Serializer(values), "value {0}", s);
            var keys = Map((s.Length == 0 ? "k" : s, "v"));
            YamlText.Emit(keys).Should().Be(Serializer(keys), "key {0}", s);
            var list = Map(("addresses", new List<object> { s, "after" }));
            YamlText.Emit(list).Should().Be(Serializer(list), "list item {0}", s);
        }
    }

    [Test]
    public void Emit_MetaDataShapes_MatchTheSerializer()
    {
        var same = "same-" + Guid.NewGuid().ToString("N"); // one string instance twice: no anchors either way
        object[] documents =
        [
            Map((CloudInitSeed.InstanceIdKey, "0f9c2d3e-uid"), (CloudInitSeed.HostnameKey, "web-1")),
            Map((CloudInitSeed.InstanceIdKey, same), (CloudInitSeed.HostnameKey, same)),
            Map((CloudInitSeed.HostnameKey, "web-1")),
            Map((CloudInitSeed.InstanceIdKey, "")),
            Map(),
        ];
        foreach (var document in documents)
        {
            YamlText.Emit(document).Should().Be(Serializer(document));
        }
    }

    [Test]
    public void Emit_NetworkConfigShapes_MatchTheSerializer()
    {
        object[] documents =
        [
            Map(("version", 2), ("ethernets", Map())),
            Map(("version", 2), ("ethernets", Map(("eth0", Map(("match", Map(("macaddress", "52:54:00:12:34:56"))), ("dhcp4", true)))))),
            Map(("version", 2), ("ethernets", Map(
                ("eth0", Map(("match", Map(("macaddress", "52:54:00:12:34:56"))), ("dhcp4", false), ("addresses", new List<object> { "10.0.0.2/24" }),
                    ("gateway4", "10.0.0.1"), ("nameservers", Map(("addresses", new List<object> { "1.1.1.1", "fd00::53" }))))),
                ("eth1", Map(("match", Map(("macaddress", "52:54:00:ab:cd:ef"))), ("dhcp4", false), ("addresses", new List<object> { "fd00::2/64" }),
                    ("gateway6", "fd00::1"), ("nameservers", Map(("addresses", new List<object> { "1.1.1.1", "fd00::53" }))))),
                ("eth2", Map(("match", Map(("macaddress", "52:54:00:00:00:01"))), ("dhcp4", true)))))),
            Map(("empty-list", new List<object>()), ("nested", new List<object> { Map(("a", 1)), new List<object> { "x" } }), ("n", -12), ("t", true)),
        ];
        foreach (var document in documents)
        {
            YamlText.Emit(document).Should().Be(Serializer(document));
        }
    }

    [Test]
    public void NetworkConfigV2_StaticDhcpAndV6Nics_MatchesTheSerializerOnTheSameTree()
    {
        var nics = new[]
        {
            new GuestNic(new NetworkInterfaceSpec { DeviceId = "eth0", Address = "10.0.0.2/24", Gateway = "10.0.0.1", Nameservers = ["1.1.1.1", "8.8.8.8"] }, "52:54:00:12:34:56"),
            new GuestNic(new NetworkInterfaceSpec { DeviceId = "eth1", Address = "fd00::2/64", Gateway = "fd00::1" }, "52:54:00:AB:CD:EF"),
            new GuestNic(new NetworkInterfaceSpec { DeviceId = "eth2" }, "52:54:00:00:00:01"),
        };
        var expected = Map(("version", 2), ("ethernets", Map(
            ("eth0", Map(("match", Map(("macaddress", "52:54:00:12:34:56"))), ("dhcp4", false), ("addresses", new List<object> { "10.0.0.2/24" }),
                ("gateway4", "10.0.0.1"), ("nameservers", Map(("addresses", new List<object> { "1.1.1.1", "8.8.8.8" }))))),
            ("eth1", Map(("match", Map(("macaddress", "52:54:00:ab:cd:ef"))), ("dhcp4", false), ("addresses", new List<object> { "fd00::2/64" }),
                ("gateway6", "fd00::1"))),
            ("eth2", Map(("match", Map(("macaddress", "52:54:00:00:00:01"))), ("dhcp4", true))))));

        CloudInitSeed.NetworkConfigV2(nics).Should().Be(Serializer(expected));
    }

    [Test]
    public void MetaData_NoCallerText_MatchesTheSerializer()
    {
        CloudInitSeed.MetaData(null, "0f9c2d3e-uid", "web-1")
            .Should().Be(Serializer(Map((CloudInitSeed.InstanceIdKey, "0f9c2d3e-uid"), (CloudInitSeed.HostnameKey, "web-1"))));
        CloudInitSeed.MetaData("local-hostname: mine\n", "0f9c2d3e-uid", "web-1")
            .Should().Be("local-hostname: mine\n" + Serializer(Map((CloudInitSeed.InstanceIdKey, "0f9c2d3e-uid"))));
    }
}

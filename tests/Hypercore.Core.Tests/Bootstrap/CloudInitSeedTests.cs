using Hypercore.Bootstrap;
using Hypercore.MicroVms;
using YamlDotNet.RepresentationModel;

namespace Hypercore.Core.Tests.Bootstrap;

public sealed class CloudInitSeedTests
{
    private const string Uid = "0f9c2d3e-uid";

    private static MicroVm Vm(IReadOnlyDictionary<string, string>? metadata = null, bool addNetworkConfig = false, params NetworkInterfaceSpec[] nics) =>
        new()
        {
            Uid = Uid,
            ResourceVersion = "1",
            Spec = new MicroVmSpec
            {
                Id = "web-1",
                Kernel = new KernelSpec { Image = "/images/vmlinuz", AddNetworkConfig = addNetworkConfig },
                Interfaces = nics,
                Metadata = metadata ?? new Dictionary<string, string>(),
            },
        };

    private static YamlMappingNode Yaml(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        stream.Documents.Should().ContainSingle();
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    private static string Scalar(YamlNode node, params string[] path)
    {
        foreach (var p in path)
        {
            node = ((YamlMappingNode)node).Children[new YamlScalarNode(p)];
        }

        return ((YamlScalarNode)node).Value!;
    }

    [Test]
    public void IsNeeded_OnlyWithMetadataOrANetworkConfigToGenerate()
    {
        var eth = new NetworkInterfaceSpec { DeviceId = "eth0" };
        CloudInitSeed.IsNeeded(Vm().Spec).Should().BeFalse();
        CloudInitSeed.IsNeeded(Vm(addNetworkConfig: true).Spec).Should().BeFalse("no interface: nothing to configure");
        CloudInitSeed.IsNeeded(Vm(nics: eth).Spec).Should().BeFalse();
        CloudInitSeed.IsNeeded(Vm(addNetworkConfig: true, nics: eth).Spec).Should().BeTrue();
        CloudInitSeed.IsNeeded(Vm(new Dictionary<string, string> { ["x-a"] = "1" }).Spec).Should().BeTrue();
    }

    [Test]
    public void Files_NoMetaData_MetaDataNamesTheInstanceAndUserDataIsPresentAndEmpty()
    {
        var files = CloudInitSeed.Files(Vm(new Dictionary<string, string> { ["x-role"] = "db" }), []);

        files.Keys.Should().Equal("meta-data", "user-data", "x-role");
        var meta = Yaml(files["meta-data"]);
        Scalar(meta, "instance-id").Should().Be(Uid);
        Scalar(meta, "local-hostname").Should().Be("web-1");
        files["user-data"].Should().BeEmpty();
        files["x-role"].Should().Be("db");
    }

    [Test]
    public void MetaData_CallerBlockMapping_KeepsTheTextAndAddsOnlyWhatIsMissing()
    {
        var caller = "# mine\nlocal-hostname: custom\nregion: here";

        var meta = CloudInitSeed.MetaData(caller, Uid, "web-1");

        meta.Should().StartWith(caller + "\n", "the caller's text, comments included, is kept as written");
        var map = Yaml(meta);
        Scalar(map, "local-hostname").Should().Be("custom", "the caller's value wins");
        Scalar(map, "instance-id").Should().Be(Uid);
        Scalar(map, "region").Should().Be("here");
        map.Children.Should().HaveCount(3);
    }

    [Test]
    public void MetaData_CallerSetBoth_IsUnchanged()
    {
        const string caller = "instance-id: i-7\nlocal-hostname: h\n";

        CloudInitSeed.MetaData(caller, Uid, "web-1").Should().Be(caller);
    }

    [Test]
    public void MetaData_CallerJson_IsCompletedAsValidYaml()
    {
        var meta = CloudInitSeed.MetaData("{\"instance-id\": \"i-9\", \"tags\": {\"a\": \"b\"}}", Uid, "web-1");

        var map = Yaml(meta);
        Scalar(map, "instance-id").Should().Be("i-9");
        Scalar(map, "local-hostname").Should().Be("web-1");
        Scalar(map, "tags", "a").Should().Be("b");
        meta.Should().MatchRegex("(?m)^local-hostname: web-1$", "block style, so simple line readers find it too");
    }

    [Test]
    public void Files_AddNetworkConfig_GeneratesVersion2MatchedByMacWithStaticAndDhcp()
    {
        var vm = Vm(null, true,
            new NetworkInterfaceSpec { DeviceId = "eth0", Address = "10.0.0.2/24", Gateway = "10.0.0.1", Nameservers = ["10.0.0.53", "10.0.0.54"] },
            new NetworkInterfaceSpec { DeviceId = "eth1" });
        GuestNic[] nics = [new(vm.Spec.Interfaces[0], "02:AA:BB:CC:DD:01"), new(vm.Spec.Interfaces[1], "02:aa:bb:cc:dd:02")];

        var files = CloudInitSeed.Files(vm, nics);

        files.Keys.Should().Equal("meta-data", "user-data", "network-config");
        var net = Yaml(files["network-config"]);
        Scalar(net, "version").Should().Be("2");
        var eth0 = net.Children[new YamlScalarNode("ethernets")]["eth0"];
        Scalar(eth0, "match", "macaddress").Should().Be("02:aa:bb:cc:dd:01");
        Scalar(eth0, "dhcp4").Should().Be("false");
        ((YamlSequenceNode)eth0["addresses"]).Select(n => ((YamlScalarNode)n).Value).Should().Equal("10.0.0.2/24");
        Scalar(eth0, "gateway4").Should().Be("10.0.0.1");
        ((YamlSequenceNode)eth0["nameservers"]["addresses"]).Select(n => ((YamlScalarNode)n).Value).Should().Equal("10.0.0.53", "10.0.0.54");
        var eth1 = net.Children[new YamlScalarNode("ethernets")]["eth1"];
        Scalar(eth1, "match", "macaddress").Should().Be("02:aa:bb:cc:dd:02");
        Scalar(eth1, "dhcp4").Should().Be("true");
        ((YamlMappingNode)eth1).Children.Should().HaveCount(2, "DHCP: no address, gateway or nameservers");
    }

    [Test]
    public void Files_CallersNetworkConfig_WinsOverTheGeneratedOne()
    {
        const string mine = "version: 1\nconfig: []\n";
        var vm = Vm(new Dictionary<string, string> { ["network-config"] = mine }, true, new NetworkInterfaceSpec { DeviceId = "eth0" });

        var files = CloudInitSeed.Files(vm, [new GuestNic(vm.Spec.Interfaces[0], "02:00:00:00:00:01")]);

        files["network-config"].Should().Be(mine);
    }

    [Test]
    public void Files_WithoutAddNetworkConfig_GeneratesNoNetworkConfig()
    {
        var vm = Vm(new Dictionary<string, string> { ["user-data"] = "#!/bin/sh\n" }, false, new NetworkInterfaceSpec { DeviceId = "eth0", Address = "10.0.0.2/24" });

        var files = CloudInitSeed.Files(vm, [new GuestNic(vm.Spec.Interfaces[0], "02:00:00:00:00:01")]);

        files.Should().NotContainKey("network-config");
        files["user-data"].Should().Be("#!/bin/sh\n");
    }
}

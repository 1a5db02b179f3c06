using Hypercore.Bootstrap;
using Hypercore.MicroVms;

namespace Hypercore.Core.Tests.Bootstrap;

public sealed class GuestMetadataRulesTests
{
    private static MicroVmSpec Spec(IReadOnlyDictionary<string, string> metadata) => new()
    {
        Id = "vm1",
        Kernel = new KernelSpec { Image = "/images/vmlinuz" },
        Metadata = metadata,
    };

    [Test]
    public void Validate_FlintlocksKeysAndExtensionKeys_AreAccepted()
    {
        var errors = MicroVmSpecValidator.Validate(Spec(new Dictionary<string, string>
        {
            ["meta-data"] = "instance-id: abc\n",
            ["user-data"] = "#!/bin/sh\necho hi\n",
            ["vendor-data"] = "#cloud-config\n",
            ["network-config"] = "version: 2\nethernets: {}\n",
            ["x-role"] = "worker",
            ["x-a.b_c-1"] = "",
        }));

        errors.Should().BeEmpty();
    }

    [TestCase("hostname")]
    [TestCase("x-")]
    [TestCase("x-Upper")]
    [TestCase("x-../etc")]
    [TestCase("X-role")]
    [TestCase("meta_data")]
    public void Validate_UnknownKey_IsRefusedNamingTheKey(string key)
    {
        var errors = MicroVmSpecValidator.Validate(Spec(new Dictionary<string, string> { [key] = "v" }));

        errors.Should().ContainSingle().Which.Should().Contain($"metadata key \"{key}\"").And.Contain("x-");
    }

    [Test]
    public void Validate_TotalOver64KiB_IsRefusedNamingTheLargestKey()
    {
        var ok = new Dictionary<string, string> { ["user-data"] = new string('a', GuestMetadataRules.MaxTotalBytes - "user-data".Length) };
        MicroVmSpecValidator.Validate(Spec(ok)).Should().BeEmpty("exactly 64 KiB (keys included) is allowed");

        var tooBig = new Dictionary<string, string>
        {
            ["user-data"] = new string('a', 60 * 1024),
            ["x-blob"] = new string('é', 3000), // 2 bytes each in UTF-8: counted in bytes, not characters
        };
        var errors = MicroVmSpecValidator.Validate(Spec(tooBig));

        errors.Should().ContainSingle().Which.Should().Contain("65536").And.Contain("\"user-data\"");
    }

    [TestCase("meta-data", "- a\n- b\n", "is not a YAML mapping")]
    [TestCase("meta-data", "instance-id: [unclosed\n", "is not valid YAML")]
    [TestCase("network-config", "just text", "is not a YAML mapping")]
    [TestCase("meta-data", "a: 1\n---\nb: 2\n", "2 YAML documents")]
    public void Validate_MetaDataOrNetworkConfigNotAMapping_IsRefused(string key, string value, string expected)
    {
        var errors = MicroVmSpecValidator.Validate(Spec(new Dictionary<string, string> { [key] = value }));

        errors.Should().ContainSingle().Which.Should().Contain($"metadata[\"{key}\"]").And.Contain(expected);
    }

    [Test]
    public void Validate_JsonMetaDataAndEmptyMetaData_AreAccepted()
    {
        MicroVmSpecValidator.Validate(Spec(new Dictionary<string, string> { ["meta-data"] = "{\"instance-id\": \"i-1\"}" })).Should().BeEmpty();
        MicroVmSpecValidator.Validate(Spec(new Dictionary<string, string> { ["meta-data"] = "" })).Should().BeEmpty();
    }

    [TestCase("10.0.0.2", false)]
    [TestCase("10.0.0.2/33", false)]
    [TestCase("nonsense/24", false)]
    [TestCase("10.0.0.2/24", true)]
    [TestCase("2001:db8::2/64", true)]
    public void Validate_InterfaceAddress_MustBeCidr(string address, bool valid)
    {
        var spec = Spec(new Dictionary<string, string>()) with
        {
            Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", Address = address }],
        };

        var errors = MicroVmSpecValidator.Validate(spec);

        if (valid)
        {
            errors.Should().BeEmpty();
        }
        else
        {
            errors.Should().ContainSingle().Which.Should().Contain($"address \"{address}\" is not an address in CIDR form");
        }
    }
}

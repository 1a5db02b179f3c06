using Hypercore.Bootstrap;
using Hypercore.MicroVms;
using Hypercore.Snapshots;

namespace Hypercore.Core.Tests.MicroVms;

/// <summary>
/// .NET's <c>$</c> also matches before a final newline, so a name pattern anchored with it accepted "web\n" (found by
/// req13, thirteenth pass of issue 15). Every name the daemon checks is anchored with <c>\z</c> now: an id, namespace,
/// MAC, partition id, snapshot name or metadata key that ends in a newline is refused like any other bad character.
/// </summary>
public sealed class TrailingNewlineTests
{
    private static readonly MicroVmSpec Plain = new()
    {
        Id = "web",
        Namespace = "default",
        Vcpu = 1,
        MemoryInMb = 128,
        Kernel = new KernelSpec { Image = "/var/lib/hypercore/images/vmlinuz" },
        Provider = "qemu",
    };

    [TestCase("web")]
    [TestCase("a.b-c")]
    public void IsName_AcceptsAPlainName(string name) => MicroVmSpecValidator.IsName(name).Should().BeTrue();

    [TestCase("web\n")]
    [TestCase("web\r\n")]
    [TestCase("web\nx")]
    public void IsName_RefusesANewline(string name) => MicroVmSpecValidator.IsName(name).Should().BeFalse();

    [Test]
    public void Validate_RefusesAnIdOrNamespaceEndingInANewline()
    {
        MicroVmSpecValidator.Validate(Plain).Should().BeEmpty();
        MicroVmSpecValidator.Validate(Plain with { Id = "web\n" }).Should().ContainSingle().Which.Should().StartWith("id ");
        MicroVmSpecValidator.Validate(Plain with { Namespace = "default\n" }).Should().ContainSingle().Which.Should().StartWith("namespace ");
    }

    [Test]
    public void Message_ShowsTheNewlineEscaped_OnOneLine()
    {
        MicroVmSpecValidator.Validate(Plain with { Id = "web\n" }).Should().ContainSingle()
            .Which.Should().StartWith("id \"web\\n\" must be").And.NotContain("\n");
        MicroVmSpecValidator.Validate(Plain with { Id = "a\tb\u0001" }).Should().ContainSingle()
            .Which.Should().StartWith("id \"a\\tb\\u0001\" must be");
    }

    [TestCase("web", "\"web\"")]
    [TestCase("C:\\x \"y\"", "\"C:\\x \"y\"\"")]
    [TestCase("a\r\nb\u007f", "\"a\\r\\nb\\u007f\"")]
    [TestCase(null, "\"\"")]
    public void Quoted_EscapesOnlyControlCharacters(string? value, string expected) =>
        MicroVmSpecValidator.Quoted(value).Should().Be(expected);

    [Test]
    public void Validate_RefusesAMacEndingInANewline()
    {
        var good = Plain with { Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", GuestMac = "02:00:00:00:00:01" }] };
        var bad = Plain with { Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", GuestMac = "02:00:00:00:00:01\n" }] };

        MicroVmSpecValidator.Validate(good).Should().BeEmpty();
        MicroVmSpecValidator.Validate(bad).Should().ContainSingle().Which.Should().Contain("guest_mac");
    }

    [Test]
    public void SnapshotName_EndingInANewline_IsRefused()
    {
        SnapshotStore.NameProblem("snap1").Should().BeNull();
        SnapshotStore.NameProblem("snap1\n").Should().NotBeNull();
    }

    [Test]
    public void MetadataKey_EndingInANewline_IsRefused()
    {
        GuestMetadataRules.IsAllowedKey("x-role").Should().BeTrue();
        GuestMetadataRules.IsAllowedKey("x-role\n").Should().BeFalse();
    }
}

using Hypercore.Api.MicroVms;

namespace Hypercore.Api.Tests.Wire;

public sealed class OciReferenceTests
{
    [TestCase("ghcr.io/liquidmetal-dev/firecracker-kernel:5.10.77", "ghcr.io", "liquidmetal-dev/firecracker-kernel", "5.10.77", null)]
    [TestCase("localhost:5000/kernel", "localhost:5000", "kernel", null, null)]
    [TestCase("registry.example.com:443/a/b/c:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "registry.example.com:443", "a/b/c", "v1", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [TestCase("ubuntu:22.04", "docker.io", "ubuntu", "22.04", null)]
    [TestCase("library/busybox", "docker.io", "library/busybox", null, null)]
    public void TryParse_Reference_YieldsItsParts(string value, string registry, string repository, string? tag, string? digest)
    {
        OciReference.TryParse(value, out var reference).Should().BeTrue();
        reference.Should().Be(new OciReference(registry, repository, tag, digest));
    }

    [TestCase("default")]
    [TestCase("/var/lib/hypercore/images/default/vmlinuz")]
    [TestCase("")]
    [TestCase("Upper/Case:tag")]
    [TestCase("ghcr.io/x/y:")]
    [TestCase("a b/c")]
    [TestCase("ghcr.io/x/y:1\n")] // .NET's $ matched before a final newline (thirteenth pass of issue 15)
    public void TryParse_NameOrPathOrMalformed_IsNotAReference(string value) =>
        OciReference.TryParse(value, out _).Should().BeFalse();
}

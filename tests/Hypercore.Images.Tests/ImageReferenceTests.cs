using Hypercore.Images.References;

namespace Hypercore.Images.Tests;

public sealed class ImageReferenceTests
{
    [TestCase("localhost:5000/x:y", "localhost:5000", "x", "y", null)]
    [TestCase("localhost/x", "localhost", "x", "latest", null)]
    [TestCase("ghcr.io/org/team/kernel:6.1", "ghcr.io", "org/team/kernel", "6.1", null)]
    [TestCase("127.0.0.1:5000/hypercore/default:1", "127.0.0.1:5000", "hypercore/default", "1", null)]
    [TestCase("docker.io/busybox", "docker.io", "library/busybox", "latest", null)]
    [TestCase("index.docker.io/user/app:v2", "docker.io", "user/app", "v2", null)]
    [TestCase("registry.example.com/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "registry.example.com", "app", null, "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [TestCase("r.example.com:443/a/b:t@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "r.example.com:443", "a/b", "t", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    public void TryParse_RegistryReference_SplitsItsParts(string text, string registry, string repository, string? tag, string? digest)
    {
        ImageReference.TryParse(text, out var reference, out var error).Should().BeTrue(error);

        reference!.Registry.Should().Be(registry);
        reference.Repository.Should().Be(repository);
        reference.Tag.Should().Be(tag);
        reference.Digest.Should().Be(digest);
        reference.ManifestReference.Should().Be(digest ?? tag);
    }

    [TestCase("default")]
    [TestCase("hypercore/default")]
    [TestCase("my-kernel:1")]
    [TestCase("images/ubuntu/22.04")]
    public void TryParse_PlainName_IsALocalFolderNotAReference(string text)
    {
        ImageReference.TryParse(text, out var reference, out var error).Should().BeFalse();

        reference.Should().BeNull();
        error.Should().BeNull("a plain name is not a malformed reference, it names a folder in the image directory");
        ImageReference.LooksLikeReference(text).Should().BeFalse();
    }

    [TestCase("localhost:5000/Upper:1", "repository")]
    [TestCase("localhost:5000/x:bad/tag", "tag")]
    [TestCase("localhost:5000/x:-tag", "tag")]
    [TestCase("localhost:5000/x@sha256:abc", "digest")]
    [TestCase("localhost:5000/x@md5:0123456789abcdef0123456789abcdef", "digest")]
    [TestCase("bad_host.example.com/x:1", "registry")]
    [TestCase("localhost:5000/", "repository")]
    [TestCase("localhost:5000/x:1\n", "tag")] // .NET's $ matched before a final newline (thirteenth pass of issue 15)
    [TestCase("localhost:5000/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", "digest")]
    [TestCase("localhost:5000/x\n", "repository")]
    public void TryParse_MalformedReference_FailsWithTheReason(string text, string part)
    {
        ImageReference.TryParse(text, out _, out var error).Should().BeFalse();

        error.Should().Contain(part).And.Contain(text);
    }

    [Test]
    public void DockerHub_UsesTheRegistryApiHost()
    {
        ImageReference.Parse("docker.io/busybox:1.36").ApiHost.Should().Be("registry-1.docker.io");
        ImageReference.Parse("localhost:5000/x").ApiHost.Should().Be("localhost:5000");
    }

    [Test]
    public void ToString_RoundTrips()
    {
        foreach (var text in new[] { "localhost:5000/x:y", "ghcr.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" })
            ImageReference.Parse(text).ToString().Should().Be(text);
    }

    [Test]
    public void Parse_PlainName_ThrowsSayingItIsAFolder()
    {
        var act = () => ImageReference.Parse("default");

        act.Should().Throw<FormatException>().WithMessage("*local image folder*");
    }
}

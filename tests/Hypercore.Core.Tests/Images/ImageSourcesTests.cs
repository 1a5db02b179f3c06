using Hypercore.Images;

namespace Hypercore.Core.Tests.Images;

/// <summary>Which kernel.image / container_source texts are registry references and which stay paths or folder names.</summary>
public class ImageSourcesTests
{
    [TestCase("localhost:5000/hypercore/default:1")]
    [TestCase("localhost/x")]
    [TestCase("ghcr.io/org/kernel@sha256:0123")]
    [TestCase("registry.example.com:443/a/b:c")]
    public void IsReference_RegistryHostFirst_True(string text) => ImageSources.IsReference(text).Should().BeTrue();

    [TestCase("default")]
    [TestCase("my-kernel:1")]
    [TestCase("/var/lib/hypercore/images/default/vmlinuz")]
    [TestCase("../images/default")]
    [TestCase("./vmlinuz/x")]
    [TestCase("..:5000/x")]
    [TestCase("org/kernel:1")]
    [TestCase("")]
    [TestCase(null)]
    public void IsReference_PathOrFolderName_False(string? text) => ImageSources.IsReference(text).Should().BeFalse();
}

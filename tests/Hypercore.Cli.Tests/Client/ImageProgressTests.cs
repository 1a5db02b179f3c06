using Hypercore.Client;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Tests.Client;

/// <summary>Images (issue 11): the progress line `vis run` and `vis get -w` show while a VM's images are pulled.</summary>
public sealed class ImageProgressTests
{
    private static MicroVMStatus With(string status, string reason, string message)
    {
        var s = new MicroVMStatus { Phase = "Pending" };
        s.Conditions.Add(new Condition { Type = "ImageReady", Status = status, Reason = reason, Message = message });
        return s;
    }

    [Test]
    public void Describe_PullingWithBytes_DrawsABarPerImage()
    {
        var status = With("False", "Pulling",
            "localhost:5000/k:1: 16.0/64.0 MiB (16777216/67108864 bytes); localhost:5000/rootfs:1: resolving");

        ImageProgress.Describe(status, width: 8).Should()
            .Be("pulling localhost:5000/k:1 [##......] 16.0/64.0 MiB; pulling localhost:5000/rootfs:1: resolving");
    }

    [Test]
    public void Describe_BackOff_ShowsReasonAndTheRegistrysWords()
    {
        ImageProgress.Describe(With("False", "ImagePullBackOff", "r:1: 404 MANIFEST_UNKNOWN; retrying in 4 s"))
            .Should().Be("ImagePullBackOff: r:1: 404 MANIFEST_UNKNOWN; retrying in 4 s");
    }

    [Test]
    public void Describe_ReadyOrNoImages_IsNull()
    {
        ImageProgress.Describe(With("True", "ImagesReady", "r:1 (sha256:ab)")).Should().BeNull();
        ImageProgress.Describe(new MicroVMStatus { Phase = "Running" }).Should().BeNull();
        ImageProgress.Describe(null).Should().BeNull();
    }
}

using Hypercore.Images.Tests.Fixtures;

namespace Hypercore.Images.Tests;

public sealed class ImageLayoutTests
{
    private string _tree = null!;

    [SetUp]
    public void SetUp()
    {
        _tree = Tools.TempDir("layout");
        Directory.CreateDirectory(Path.Combine(_tree, "boot"));
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_tree, recursive: true);

    [Test]
    public void FindKernel_PrefersVmlinuxThenVmlinuz()
    {
        File.WriteAllText(Path.Combine(_tree, "boot/vmlinuz"), "z");
        ImageLayout.FindKernel(_tree, null).Should().Be(Path.Combine(_tree, "boot/vmlinuz"));

        File.WriteAllText(Path.Combine(_tree, "boot/vmlinux"), "x");
        ImageLayout.FindKernel(_tree, null).Should().Be(Path.Combine(_tree, "boot/vmlinux"));
    }

    [Test]
    public void FindKernel_AbsoluteSymlinkResolvesInsideTheTree()
    {
        File.WriteAllText(Path.Combine(_tree, "boot/vmlinuz-6.1"), "k");
        File.CreateSymbolicLink(Path.Combine(_tree, "boot/vmlinuz"), "/boot/vmlinuz-6.1");

        ImageLayout.FindKernel(_tree, null).Should().Be(Path.Combine(_tree, "boot/vmlinuz-6.1"));
    }

    [Test]
    public void FindInitrd_SymlinkToAHostFile_IsNotFound()
    {
        File.CreateSymbolicLink(Path.Combine(_tree, "boot/initrd.img"), "/etc/hostname");
        Directory.CreateDirectory(Path.Combine(_tree, "x"));
        File.CreateSymbolicLink(Path.Combine(_tree, "x/up"), "../../../../../etc");

        var act = () => ImageLayout.FindInitrd(_tree, null);
        act.Should().Throw<ImagePullException>().WithMessage("*initrd*boot/initrd.img*").Which.Kind.Should().Be(ImagePullErrorKind.MissingFile);
        var up = () => ImageLayout.FindInitrd(_tree, "x/up/hostname");
        up.Should().Throw<ImagePullException>();
    }

    [Test]
    public void FindKernel_Missing_SaysWhereItLooked()
    {
        var act = () => ImageLayout.FindKernel(_tree, null);

        act.Should().Throw<ImagePullException>().WithMessage("*boot/vmlinux or boot/vmlinuz*");
    }
}

using Hypercore.Images.Cache;
using Hypercore.Images.Tests.Fixtures;

namespace Hypercore.Images.Tests;

public sealed class LayerUnpackerTests
{
    private string _dir = null!;
    private string _root = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Tools.TempDir("unpack");
        _root = Path.Combine(_dir, "root");
        Directory.CreateDirectory(_root);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private Task ApplyAsync(Blob layer)
    {
        var path = Path.Combine(_dir, Guid.NewGuid().ToString("N"));
        File.WriteAllBytes(path, layer.Bytes);
        return LayerUnpacker.ApplyAsync(_root, path, layer.Digest, CancellationToken.None);
    }

    private async Task ShouldRefuse(Blob layer, string why)
    {
        var act = () => ApplyAsync(layer);
        var error = (await act.Should().ThrowAsync<ImagePullException>()).Which;
        error.Kind.Should().Be(ImagePullErrorKind.InvalidLayer);
        error.Message.Should().Contain(why);
        File.Exists(Path.Combine(_dir, "escaped")).Should().BeFalse("nothing may be written outside the root");
    }

    [Test]
    public Task Apply_DotDotInEntryName_IsRefused() =>
        ShouldRefuse(TestImages.Layer(new FileEntry("a/../../escaped", "x")), "'..'");

    [Test]
    public Task Apply_AbsoluteEntryName_IsRefused() =>
        ShouldRefuse(TestImages.Layer(new FileEntry("/tmp/escaped", "x")), "absolute path");

    [Test]
    public async Task Apply_EntryWrittenThroughASymlink_IsRefused()
    {
        await ShouldRefuse(TestImages.Layer(new SymlinkEntry("link", _dir), new FileEntry("link/escaped", "x")), "through the symlink");
    }

    [Test]
    public async Task Apply_SymlinkInALaterLayerThenWriteThroughIt_IsRefused()
    {
        await ApplyAsync(TestImages.Layer(new SymlinkEntry("etc", "/")));

        await ShouldRefuse(TestImages.Layer(new FileEntry("etc/escaped", "x")), "through the symlink");
    }

    [Test]
    public Task Apply_RelativeSymlinkClimbingAboveTheRoot_IsRefused() =>
        ShouldRefuse(TestImages.Layer(new SymlinkEntry("a/b", "../../escaped")), "outside the image root");

    [Test]
    public Task Apply_HardLinkToOutsideTheRoot_IsRefused() =>
        ShouldRefuse(TestImages.Layer(new HardLinkEntry("h", "../escaped")), "'..'");

    [Test]
    public async Task Apply_AbsoluteSymlinkAndInRootLinks_AreKeptAsWritten()
    {
        await ApplyAsync(TestImages.Layer(
            new FileEntry("usr/bin/busybox", "bb"),
            new SymlinkEntry("bin/sh", "/usr/bin/busybox"),
            new SymlinkEntry("bin/ls", "../usr/bin/busybox"),
            new HardLinkEntry("usr/bin/hard", "usr/bin/busybox")));

        new FileInfo(Path.Combine(_root, "bin/sh")).LinkTarget.Should().Be("/usr/bin/busybox");
        File.ReadAllText(Path.Combine(_root, "bin/ls")).Should().Be("bb");
        File.ReadAllText(Path.Combine(_root, "usr/bin/hard")).Should().Be("bb");
    }

    [Test]
    public async Task Apply_OpaqueMarker_KeepsWhatTheSameLayerPutThereWhateverTheOrder()
    {
        await ApplyAsync(TestImages.Layer(new FileEntry("d/lower", "1")));

        await ApplyAsync(TestImages.Layer(new FileEntry("d/upper", "2"), new FileEntry("d/.wh..wh..opq", "")));

        Directory.EnumerateFileSystemEntries(Path.Combine(_root, "d")).Select(Path.GetFileName).Should().Equal("upper");
    }

    [Test]
    public async Task Apply_WhiteoutOfADirectory_RemovesItRecursively()
    {
        await ApplyAsync(TestImages.Layer(new FileEntry("var/cache/a/b", "1"), new FileEntry("var/keep", "k")));

        await ApplyAsync(TestImages.Layer(new FileEntry("var/.wh.cache", "")));

        Directory.Exists(Path.Combine(_root, "var/cache")).Should().BeFalse();
        File.Exists(Path.Combine(_root, "var/keep")).Should().BeTrue();
    }

    [Test]
    public async Task Apply_UncompressedLayer_IsAccepted()
    {
        await ApplyAsync(TestImages.Layer(gzip: false, new FileEntry("plain", "tar")));

        File.ReadAllText(Path.Combine(_root, "plain")).Should().Be("tar");
    }

    [Test]
    public async Task Apply_NotATar_IsRefusedAsInvalidLayer()
    {
        var act = () => ApplyAsync(new Blob("this is not a tar archive, not even close, but it is long enough to be read as a header block? no."u8.ToArray().Concat(new byte[600].Select(_ => (byte)'x')).ToArray(), "x"));

        (await act.Should().ThrowAsync<ImagePullException>()).Which.Kind.Should().Be(ImagePullErrorKind.InvalidLayer);
    }
}

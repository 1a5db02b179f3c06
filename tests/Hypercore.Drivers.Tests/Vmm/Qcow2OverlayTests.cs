using System.Text.Json;
using Hypercore.Drivers.Vmm;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>
/// Images (issue 11): the qcow2 overlay written in-process must be what QEMU's own tools accept: qemu-img info reads
/// its backing file and format, qemu-img check finds no error, qemu-io reads the backing file through it and writes
/// only into it. (A real guest boots on one in Hypercore.Drivers.Qemu.Tests and the images end-to-end tests.)
/// </summary>
public sealed class Qcow2OverlayTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hc-qcow-overlay-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static async Task<string> RunAsync(string tool, params string[] args)
    {
        var result = await HostProcess.RunAsync(tool, args, TimeSpan.FromMinutes(1), default);
        result.Succeeded.Should().BeTrue($"{tool} {string.Join(' ', args)}: {result.Diagnostic}");
        return result.StandardOutput;
    }

    private string Backing(long size, byte fill = 0x5a)
    {
        var path = PathOf("cached.ext4");
        using var f = File.Create(path);
        f.SetLength(size);
        f.Write(Enumerable.Repeat(fill, 4096).ToArray());
        f.Seek(size - 4096, SeekOrigin.Begin);
        f.Write(Enumerable.Repeat((byte)(fill + 1), 4096).ToArray());
        return path;
    }

    [TestCase(4L * 1024 * 1024)]
    [TestCase(137L * 1024 * 1024 + 512)]
    [TestCase(3L * 1024 * 1024 * 1024)] // more than one L1 entry (each covers 512 MiB)
    public async Task Create_QemuImgInfoAndCheck_AcceptItWithItsBackingFileAndFormat(long size)
    {
        var backing = Backing(size);
        var overlay = PathOf("image-data.qcow2");

        Qcow2Overlay.Create(overlay, backing, DiskFormats.Raw, size);

        using var info = JsonDocument.Parse(await RunAsync("qemu-img", "info", "--output=json", overlay));
        var root = info.RootElement;
        root.GetProperty("format").GetString().Should().Be("qcow2");
        root.GetProperty("virtual-size").GetInt64().Should().Be(size);
        root.GetProperty("cluster-size").GetInt32().Should().Be(65536);
        root.GetProperty("backing-filename").GetString().Should().Be(backing);
        root.GetProperty("backing-filename-format").GetString().Should().Be("raw");
        root.GetProperty("format-specific").GetProperty("data").GetProperty("compat").GetString().Should().Be("1.1", "version 3");
        root.GetProperty("format-specific").GetProperty("data").GetProperty("refcount-bits").GetInt32().Should().Be(16);
        (await RunAsync("qemu-img", "check", overlay)).Should().Contain("No errors were found");
        DiskFormats.ForUntrusted(overlay, "volume \"data\"", allowedBacking: backing).Should().Be(new DiskFormats.Checked(DiskFormats.Qcow2, UsesBacking: true));
        (await RunAsync("qemu-img", "compare", "-f", "qcow2", "-F", "raw", overlay, backing)).Should().Contain("Images are identical");
    }

    [Test]
    public async Task Create_WritesThroughQemuIo_LandInTheOverlayOnly_AndCheckStaysClean()
    {
        var backing = Backing(8L * 1024 * 1024);
        var before = await File.ReadAllBytesAsync(backing);
        var overlay = PathOf("image-data.qcow2");
        Qcow2Overlay.Create(overlay, backing, DiskFormats.Raw, 8L * 1024 * 1024);

        await RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0xab 65536 131072", "-c", "write -P 0xcd 7340032 4096", overlay);

        var read = await RunAsync("qemu-io", "-f", "qcow2", "-c", "read -P 0x5a 0 4096", "-c", "read -P 0xab 65536 131072", "-c", "read -P 0xcd 7340032 4096",
            "-c", "read -P 0x5b 8384512 4096", overlay);
        read.Should().NotContain("Pattern verification failed");
        (await RunAsync("qemu-img", "check", overlay)).Should().Contain("No errors were found");
        (await File.ReadAllBytesAsync(backing)).Should().Equal(before, "the cached disk is never written");
    }

    [Test]
    public async Task Create_LargerThanTheBackingFile_ReadsZerosPastIt()
    {
        var backing = Backing(4L * 1024 * 1024);
        var overlay = PathOf("image-data.qcow2");

        Qcow2Overlay.Create(overlay, backing, DiskFormats.Raw, 64L * 1024 * 1024);

        using var info = JsonDocument.Parse(await RunAsync("qemu-img", "info", "--output=json", overlay));
        info.RootElement.GetProperty("virtual-size").GetInt64().Should().Be(64L * 1024 * 1024);
        var read = await RunAsync("qemu-io", "-f", "qcow2", "-c", "read -P 0x5b 4190208 4096", "-c", "read -P 0 4194304 1048576", overlay);
        read.Should().NotContain("Pattern verification failed");
        (await RunAsync("qemu-img", "check", overlay)).Should().Contain("No errors were found");
    }

    [Test]
    public void Create_RelativeBackingOrUnknownFormatOrExistingFile_Throws()
    {
        var overlay = PathOf("x.qcow2");
        FluentActions.Invoking(() => Qcow2Overlay.Create(overlay, "cached.ext4", DiskFormats.Raw, 1024)).Should().Throw<ArgumentException>().WithMessage("*absolute*");
        FluentActions.Invoking(() => Qcow2Overlay.Create(overlay, "/x", "vmdk", 1024)).Should().Throw<ArgumentException>().WithMessage("*raw or qcow2*");
        File.Exists(overlay).Should().BeFalse();
        File.WriteAllText(overlay, "x");
        FluentActions.Invoking(() => Qcow2Overlay.Create(overlay, "/x", DiskFormats.Raw, 1024)).Should().Throw<IOException>();
        File.ReadAllText(overlay).Should().Be("x");
    }
}

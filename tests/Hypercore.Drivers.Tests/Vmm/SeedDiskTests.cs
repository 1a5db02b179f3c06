using Hypercore.Drivers.Vmm.Bootstrap;
using Hypercore.Testing;

namespace Hypercore.Drivers.Tests.Vmm;

public sealed class SeedDiskTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hc-boot-seed-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public async Task Build_FilesReadBackWithBlkidAndMtools_VfatLabelledCidata()
    {
        var path = Path.Combine(_dir, SeedDisk.FileName);
        var files = new Dictionary<string, string>
        {
            ["meta-data"] = "instance-id: i-1\nlocal-hostname: web-1\n",
            ["user-data"] = "#!/bin/sh\necho 'héllo'\n",
            ["network-config"] = "version: 2\n",
            ["x-role"] = "",
        };

        await SeedDisk.BuildAsync(path, files, default);

        var read = CidataDisk.Read(path);
        read.Type.Should().Be("vfat");
        read.Label.Should().Be("cidata", "cloud-init's NoCloud source finds its disk by this label");
        read.Files.Should().BeEquivalentTo(files, "names are kept exactly (long names, hyphens) and content byte for byte");
        Directory.GetFileSystemEntries(_dir).Should().Equal([path], "no staging file or directory is left beside it");
    }

    [Test]
    public async Task Build_Again_ReplacesTheWholeDisk()
    {
        var path = Path.Combine(_dir, SeedDisk.FileName);
        await SeedDisk.BuildAsync(path, new Dictionary<string, string> { ["meta-data"] = "a: 1\n", ["x-old"] = "x" }, default);

        await SeedDisk.BuildAsync(path, new Dictionary<string, string> { ["meta-data"] = "a: 2\n" }, default);

        CidataDisk.Read(path).Files.Should().BeEquivalentTo(new Dictionary<string, string> { ["meta-data"] = "a: 2\n" });
    }

    [Test]
    public async Task Build_NearThe64KiBLimit_Fits()
    {
        var path = Path.Combine(_dir, SeedDisk.FileName);
        var big = new string('u', 64 * 1024);

        await SeedDisk.BuildAsync(path, new Dictionary<string, string> { ["user-data"] = big, ["meta-data"] = "a: 1\n" }, default);

        CidataDisk.Read(path).Files["user-data"].Should().Be(big);
    }
}

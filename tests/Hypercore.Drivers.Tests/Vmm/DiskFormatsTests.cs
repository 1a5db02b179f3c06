using Hypercore.Drivers.Vmm;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>
/// Safe by default (issue 8): a disk the daemon did not make is opened as qcow2 only when its header names no other
/// host file. The images are made by the real qemu-img, so the header layout read is QEMU's own.
/// </summary>
public sealed class DiskFormatsTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hc-qcow-formats-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    private string Secret()
    {
        var secret = PathOf("secret.raw");
        using var f = File.Create(secret);
        f.Write("SECRET"u8);
        f.SetLength(1024 * 1024);
        return secret;
    }

    private static async Task QemuImgAsync(params string[] args)
    {
        var result = await HostProcess.RunAsync("qemu-img", args, TimeSpan.FromMinutes(1), default);
        result.Succeeded.Should().BeTrue(result.Diagnostic);
    }

    [Test]
    public async Task ForUntrusted_Qcow2WithBackingFile_RefusedNamingTheBackingFileAndHowToFlatten()
    {
        var secret = Secret();
        var evil = PathOf("evil.qcow2");
        await QemuImgAsync("create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret, evil);

        var act = () => DiskFormats.ForUntrusted(evil, "volume \"data\"");

        var ex = act.Should().Throw<DriverException>().Which;
        ex.Reason.Should().Be(DiskFormats.RefusedReason);
        ex.Message.Should().Contain("volume \"data\"").And.Contain(evil).And.Contain($"backing file \"{secret}\"")
            .And.Contain($"qemu-img convert -O qcow2 {evil}");
    }

    [Test]
    public async Task ForUntrusted_Qcow2WithBackingFileEvenWhenAnotherBackingIsAllowed_Refused()
    {
        var secret = Secret();
        var evil = PathOf("evil.qcow2");
        await QemuImgAsync("create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret, evil);

        var act = () => DiskFormats.ForUntrusted(evil, "volume \"data\"", allowedBacking: PathOf("cached.ext4"));

        act.Should().Throw<DriverException>().Which.Message.Should().Contain(secret);
    }

    [Test]
    public async Task ForUntrusted_Qcow2WithExternalDataFile_RefusedNamingIt()
    {
        var evil = PathOf("datafile.qcow2");
        await QemuImgAsync("create", "-q", "-f", "qcow2", "-o", $"data_file={Secret()}", evil, "1M");

        var act = () => DiskFormats.ForUntrusted(evil, "root_volume");

        var ex = act.Should().Throw<DriverException>().Which;
        ex.Reason.Should().Be(DiskFormats.RefusedReason);
        ex.Message.Should().Contain("external data file").And.Contain("qemu-img convert");
    }

    [Test]
    public async Task ForUntrusted_PlainQcow2_OpenedAsQcow2WithoutBacking()
    {
        var plain = PathOf("plain.qcow2");
        await QemuImgAsync("create", "-q", "-f", "qcow2", plain, "4M");

        DiskFormats.ForUntrusted(plain, "root_volume").Should().Be(new DiskFormats.Checked(DiskFormats.Qcow2, UsesBacking: false));
    }

    [Test]
    public async Task ForUntrusted_FlattenedCopyOfABackedQcow2_Accepted()
    {
        var evil = PathOf("evil.qcow2");
        var flat = PathOf("flat.qcow2");
        await QemuImgAsync("create", "-q", "-f", "qcow2", "-F", "raw", "-b", Secret(), evil);
        await QemuImgAsync("convert", "-O", "qcow2", evil, flat);

        DiskFormats.ForUntrusted(flat, "root_volume").Format.Should().Be(DiskFormats.Qcow2, "the fix the refusal suggests must work");
    }

    [Test]
    public async Task ForUntrusted_OverlayNamingTheAllowedBacking_UsesIt()
    {
        var cached = Secret();
        var overlay = PathOf("image-data.qcow2");
        await QemuImgAsync("create", "-q", "-f", "qcow2", "-F", "raw", "-b", cached, overlay);

        DiskFormats.ForUntrusted(overlay, "volume \"data\"", allowedBacking: cached)
            .Should().Be(new DiskFormats.Checked(DiskFormats.Qcow2, UsesBacking: true));
    }

    [Test]
    public void ForUntrusted_RawFileNamedQcow2_RefusedAsNotQcow2()
    {
        var fake = PathOf("fake.qcow2");
        File.WriteAllText(fake, "not a qcow2 header at all, just bytes");

        var act = () => DiskFormats.ForUntrusted(fake, "root_volume");

        act.Should().Throw<DriverException>().Which.Message.Should().Contain("is not a qcow2 image");
    }

    [Test]
    public async Task ForUntrusted_Qcow2ContentInAFileNotNamedQcow2_StaysRawAndIsNeverProbed()
    {
        var disguised = PathOf("disk.img");
        await QemuImgAsync("create", "-q", "-f", "qcow2", "-F", "raw", "-b", Secret(), disguised);

        DiskFormats.ForUntrusted(disguised, "root_volume").Should().Be(new DiskFormats.Checked(DiskFormats.Raw, UsesBacking: false));
    }

    [Test]
    public async Task Read_BackedQcow2_ReportsTheBackingFileQemuImgReports()
    {
        var secret = Secret();
        var evil = PathOf("evil.qcow2");
        await QemuImgAsync("create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret, evil);

        DiskFormats.Read(evil).Should().Be(new DiskFormats.Header(IsQcow2: true, BackingFile: secret, ExternalDataFile: false));
    }
}

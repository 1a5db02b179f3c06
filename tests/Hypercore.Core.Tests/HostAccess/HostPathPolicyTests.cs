using System.Diagnostics;
using Hypercore.HostAccess;
using Hypercore.MicroVms;

namespace Hypercore.Core.Tests.HostAccess;

/// <summary>
/// The host-path policy against a real file system: an image directory, a volume root, and the hostile things a
/// caller may name instead (links out, "..", FIFOs, device nodes made with mknod, directories, /etc/shadow).
/// </summary>
public sealed class HostPathPolicyTests
{
    private string _root = null!;
    private string _images = null!;
    private string _volumes = null!;
    private string _outside = null!;
    private HostPathPolicy _policy = null!;

    [SetUp]
    public void SetUp()
    {
        _root = Directory.CreateTempSubdirectory("hc-hostpath-").FullName;
        _images = Directory.CreateDirectory(Path.Combine(_root, "images")).FullName;
        _volumes = Directory.CreateDirectory(Path.Combine(_root, "volumes")).FullName;
        _outside = Directory.CreateDirectory(Path.Combine(_root, "outside")).FullName;
        Directory.CreateDirectory(Path.Combine(_images, "default"));
        File.WriteAllText(Path.Combine(_images, "default", "vmlinuz"), "kernel");
        File.WriteAllText(Path.Combine(_images, "default", "rootfs.img"), "rootfs");
        File.WriteAllText(Path.Combine(_volumes, "data.img"), "data");
        File.WriteAllText(Path.Combine(_outside, "secret"), "secret");
        _policy = Policy();
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_root, recursive: true);

    private HostPathPolicy Policy(Action<HostAccessOptions>? change = null, long freeMiB = 100_000)
    {
        var options = new HostAccessOptions { ImageDirectories = [_images], VolumeRoots = [_volumes], MinFreeDiskMiB = 1024, MaxScratchDiskMiBPerVm = 4096 };
        change?.Invoke(options);
        return new HostPathPolicy(options, _ => freeMiB * 1024 * 1024);
    }

    private static MicroVmSpec Spec(string kernel, string? filename = null, params VolumeSpec[] volumes) => new()
    {
        Id = "vm",
        Kernel = new KernelSpec { Image = kernel, Filename = filename },
        AdditionalVolumes = volumes,
    };

    internal static void Mknod(string path, string type, int major, int minor)
    {
        using var p = Process.Start("mknod", [path, type, major.ToString(), minor.ToString()]);
        p.WaitForExit();
        p.ExitCode.Should().Be(0, "the tests run as root, like the daemon");
    }

    [Test]
    public void CheckKernel_FileInTheImageDirectory_ReturnsItsPath()
    {
        _policy.CheckKernel("kernel", Path.Combine(_images, "default", "vmlinuz"), null).Should().Be(Path.Combine(_images, "default", "vmlinuz"));
        _policy.CheckKernel("kernel", Path.Combine(_images, "default"), "vmlinuz").Should().Be(Path.Combine(_images, "default", "vmlinuz"));
    }

    /// <summary>
    /// issue 15 (handler6): every Create asks this; a spec that passes costs no allocation (the kernel resolves a
    /// path without links in two syscalls and the checks build no list, closure, split or message; only a filename is
    /// joined to its image). It allocated ~1.2 KB before (per path a walk of strings per component, a split, a field
    /// name, closures, root + "/").
    /// </summary>
    [Test]
    public void Violations_ASpecThatPasses_AllocatesNothing()
    {
        var spec = Spec(Path.Combine(_images, "default", "vmlinuz")) with
        {
            Initrd = new InitrdSpec { Image = Path.Combine(_images, "default", "rootfs.img") },
        };
        _policy.Violations(spec).Should().BeEmpty();
        _policy.Violations(spec);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10; i++)
        {
            _policy.Violations(spec);
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    /// <summary>
    /// issue 15 (cpu10): every Create asks this. A path without links is resolved and typed with one path lookup
    /// (openat2 with RESOLVE_NO_SYMLINKS, then fstat of that descriptor); it was two (the same openat2, then a stat of
    /// the resolved path for its kind). A path through a link: open + fstat of the descriptor, no third lookup.
    /// </summary>
    [Test]
    public void Violations_ASpecThatPasses_LooksEachPathUpOnce()
    {
        var link = Path.Combine(_images, "default", "current");
        File.CreateSymbolicLink(link, Path.Combine(_images, "default", "vmlinuz"));
        var spec = Spec(Path.Combine(_images, "default", "vmlinuz"), null, new VolumeSpec { Id = "data", HostPath = Path.Combine(_volumes, "data.img") }) with
        {
            Initrd = new InitrdSpec { Image = Path.Combine(_images, "default", "rootfs.img") },
        };
        _policy.Violations(spec).Should().BeEmpty();

        HostFiles.PathLookups = 0;
        _policy.Violations(spec);
        HostFiles.PathLookups.Should().Be(3, "kernel, initrd and volume: one lookup each");

        HostFiles.PathLookups = 0;
        _policy.CheckKernel("kernel", link, null).Should().Be(Path.Combine(_images, "default", "vmlinuz"));
        HostFiles.PathLookups.Should().Be(2, "openat2 refuses the link, open(2) follows it; the kind is read from that descriptor");
    }

    [Test]
    public void CheckKernel_MissingFileInTheImageDirectory_PassesForTheDriverToReportNotFound()
    {
        _policy.CheckKernel("kernel", Path.Combine(_images, "default", "nothere"), null).Should().EndWith("nothere");
    }

    [Test]
    public void CheckKernel_EtcShadow_RefusedNamingThePathAndTheSettingThatAllowsIt()
    {
        var act = () => _policy.CheckKernel("kernel", "/etc/shadow", null);

        var ex = act.Should().Throw<HostPathNotAllowedException>().Which;
        ex.Reason.Should().Be("HostPathNotAllowed");
        ex.Message.Should().Contain("kernel /etc/shadow is outside the image directories").And.Contain(_images).And.Contain("--kernel-roots");
    }

    [Test]
    public void CheckKernel_SymlinkInTheImageDirectoryPointingOut_RefusedWithTheResolvedPath()
    {
        var link = Path.Combine(_images, "default", "evil");
        File.CreateSymbolicLink(link, Path.Combine(_outside, "secret"));

        var act = () => _policy.CheckKernel("kernel", link, null);

        act.Should().Throw<HostPathNotAllowedException>().WithMessage($"*{link} (resolves to {Path.Combine(_outside, "secret")}) is outside*");
    }

    [Test]
    public void CheckKernel_DirectorySymlinkAlongThePath_IsFollowedToo()
    {
        Directory.CreateSymbolicLink(Path.Combine(_images, "linked"), _outside);

        var act = () => _policy.CheckKernel("kernel", Path.Combine(_images, "linked", "secret"), null);

        act.Should().Throw<HostPathNotAllowedException>().WithMessage("*is outside*");
    }

    [Test]
    public void CheckKernel_LinkWhoseTargetClimbsOutThroughAnotherLink_ResolvedLikeTheKernelWould()
    {
        // /images/x -> "sub/../secret" where sub -> /outside/deep: the kernel opens /outside/secret, not /images/secret.
        Directory.CreateDirectory(Path.Combine(_outside, "deep"));
        Directory.CreateSymbolicLink(Path.Combine(_images, "sub"), Path.Combine(_outside, "deep"));
        File.WriteAllText(Path.Combine(_images, "secret"), "decoy inside the root");
        File.CreateSymbolicLink(Path.Combine(_images, "x"), "sub/../secret");

        var act = () => _policy.CheckKernel("kernel", Path.Combine(_images, "x"), null);

        act.Should().Throw<HostPathNotAllowedException>().WithMessage($"*resolves to {Path.Combine(_outside, "secret")}*");
    }

    [TestCase("/images/../etc/shadow")]
    [TestCase("..")]
    public void CheckKernel_DotDot_Refused(string suffix)
    {
        var act = () => _policy.CheckKernel("kernel", suffix.StartsWith('/') ? _root + suffix : Path.Combine(_images, suffix), null);

        act.Should().Throw<HostPathNotAllowedException>().WithMessage("*contains \"..\"*");
    }

    [TestCase("../../outside/secret")]
    [TestCase("/etc/shadow")]
    public void CheckKernel_FilenameLeavingTheImage_Refused(string filename)
    {
        var act = () => _policy.CheckKernel("kernel", Path.Combine(_images, "default"), filename);

        act.Should().Throw<HostPathNotAllowedException>().WithMessage("kernel.filename*must be a relative path inside*");
    }

    [Test]
    public void CheckKernel_FilenameThroughASymlinkOutOfTheImage_Refused()
    {
        File.CreateSymbolicLink(Path.Combine(_images, "default", "out"), Path.Combine(_images, "other"));
        Directory.CreateDirectory(Path.Combine(_images, "other"));
        File.WriteAllText(Path.Combine(_images, "other", "vmlinuz"), "another image's kernel");

        var act = () => _policy.CheckKernel("kernel", Path.Combine(_images, "default"), "out/vmlinuz");

        act.Should().Throw<HostPathNotAllowedException>().WithMessage("kernel.filename \"out/vmlinuz\" leaves kernel.image*");
    }

    [Test]
    public void CheckKernel_Directory_RefusedAsNotARegularFile()
    {
        var act = () => _policy.CheckKernel("kernel", Path.Combine(_images, "default"), null);

        act.Should().Throw<HostPathNotAllowedException>().WithMessage("*is a directory; a kernel must be a regular file");
    }

    [Test]
    public void CheckKernel_Fifo_Refused()
    {
        var fifo = Path.Combine(_images, "default", "fifo");
        using (var p = Process.Start("mkfifo", [fifo]))
        {
            p.WaitForExit();
        }

        var act = () => _policy.CheckKernel("initrd", fifo, null);

        act.Should().Throw<HostPathNotAllowedException>().WithMessage("*is a FIFO; a initrd must be a regular file");
    }

    /// <summary>issue 15 (cpu10): the kind is read from the descriptor the link was followed to, so it is the target's.</summary>
    [Test]
    public void CheckKernelAndVolume_LinkInsideTheRootsToAFifoOrABlockDevice_RefusedForWhatTheLinkNames()
    {
        var fifo = Path.Combine(_images, "default", "fifo");
        using (var p = Process.Start("mkfifo", [fifo]))
        {
            p.WaitForExit();
        }

        var fifoLink = Path.Combine(_images, "default", "looks-like-a-kernel");
        File.CreateSymbolicLink(fifoLink, fifo);
        var block = Path.Combine(_volumes, "blk");
        Mknod(block, "b", 7, 0);
        var blockLink = Path.Combine(_volumes, "looks-like-a-file.img");
        File.CreateSymbolicLink(blockLink, block);

        var kernel = () => _policy.CheckKernel("kernel", fifoLink, null);
        var volume = () => _policy.CheckVolume(new VolumeSpec { Id = "d", HostPath = blockLink });

        kernel.Should().Throw<HostPathNotAllowedException>().WithMessage($"kernel {fifoLink} (resolves to {fifo}) is a FIFO; a kernel must be a regular file");
        volume.Should().Throw<HostPathNotAllowedException>().WithMessage($"*{blockLink} (resolves to {block}) is a block device that is not listed*");
    }

    [Test]
    public void CheckKernel_UnderAConfiguredKernelRoot_Allowed()
    {
        var policy = Policy(o => o.KernelRoots = [_outside]);

        policy.CheckKernel("kernel", Path.Combine(_outside, "secret"), null).Should().Be(Path.Combine(_outside, "secret"));
    }

    [Test]
    public void CheckVolume_UnderTheVolumeRoot_Allowed_AndEtcShadowRefused()
    {
        _policy.CheckVolume(new VolumeSpec { Id = "d", HostPath = Path.Combine(_volumes, "data.img") }).Should().Be(Path.Combine(_volumes, "data.img"));

        var act = () => _policy.CheckVolume(new VolumeSpec { Id = "d", HostPath = "/etc/shadow" });

        act.Should().Throw<HostPathNotAllowedException>().WithMessage("volume \"d\": /etc/shadow is outside the volume roots*--volume-roots*");
    }

    [Test]
    public void CheckVolume_ImageRootfs_AllowedReadOnlyOnly()
    {
        var rootfs = Path.Combine(_images, "default", "rootfs.img");

        _policy.CheckVolume(new VolumeSpec { Id = "root", HostPath = rootfs, IsReadOnly = true }).Should().Be(rootfs);
        var act = () => _policy.CheckVolume(new VolumeSpec { Id = "root", HostPath = rootfs });
        act.Should().Throw<HostPathNotAllowedException>().WithMessage("*read-only volumes may also come from the image directories");
    }

    [Test]
    public void CheckVolume_BlockDevice_RefusedUnlessListedByPath()
    {
        var block = Path.Combine(_volumes, "blk");
        Mknod(block, "b", 7, 0);

        var act = () => _policy.CheckVolume(new VolumeSpec { Id = "b", HostPath = block });
        act.Should().Throw<HostPathNotAllowedException>().WithMessage($"*is a block device that is not listed; to allow it on purpose, add {block} to*--allowed-block-devices*");

        Policy(o => o.AllowedBlockDevices = [block]).CheckVolume(new VolumeSpec { Id = "b", HostPath = block }).Should().Be(block);
    }

    [Test]
    public void CheckVolume_CharacterDeviceLikeDevNull_Refused()
    {
        var chr = Path.Combine(_volumes, "null");
        Mknod(chr, "c", 1, 3);

        var act = () => _policy.CheckVolume(new VolumeSpec { Id = "n", HostPath = chr });

        act.Should().Throw<HostPathNotAllowedException>().WithMessage("*is a character device; a volume must be a regular file or a listed block device");
        var devNull = () => _policy.CheckVolume(new VolumeSpec { Id = "n", HostPath = "/dev/null" });
        devNull.Should().Throw<HostPathNotAllowedException>();
    }

    [Test]
    public void CheckVolume_Directory_Refused()
    {
        var act = () => _policy.CheckVolume(new VolumeSpec { Id = "v", HostPath = _volumes });

        act.Should().Throw<HostPathNotAllowedException>().WithMessage("*is a directory*");
    }

    [Test]
    public void CheckVolume_ScratchDisk_PassesWithoutAPath()
    {
        _policy.CheckVolume(new VolumeSpec { Id = "s", SizeInMb = 64 }).Should().BeEmpty();
    }

    [Test]
    public void Violations_ReportsEveryProblemOfASpec()
    {
        var spec = Spec("/etc/shadow", null, new VolumeSpec { Id = "a", HostPath = "/etc/passwd" }, new VolumeSpec { Id = "b", HostPath = Path.Combine(_volumes, "data.img") });

        var violations = _policy.Violations(spec);

        violations.Should().HaveCount(2);
        violations[0].Should().StartWith("kernel /etc/shadow");
        violations[1].Should().StartWith("volume \"a\": /etc/passwd");
        _policy.Violations(spec, checkKernel: false).Should().ContainSingle();
    }

    [Test]
    public void CheckScratchDisks_OverThePerVmLimit_Refused()
    {
        var act = () => _policy.CheckScratchDisks([new VolumeSpec { Id = "a", SizeInMb = 3000 }, new VolumeSpec { Id = "b", SizeInMb = 2000 }], _root);

        act.Should().Throw<ScratchDiskRefusedException>().WithMessage("scratch disks of 5000 MiB exceed the per-VM limit of 4096 MiB*max-scratch-disk-mib*")
            .Which.Reason.Should().Be("ScratchDiskRefused");
    }

    [Test]
    public void CheckScratchDisks_BelowTheFreeSpaceWatermark_Refused_AboveIt_Allowed()
    {
        var scratch = new[] { new VolumeSpec { Id = "a", SizeInMb = 1000 } };

        var act = () => Policy(freeMiB: 1500).CheckScratchDisks(scratch, _root);
        act.Should().Throw<ScratchDiskRefusedException>().WithMessage("*would leave 500 MiB free*below the 1024 MiB kept free*min-free-disk-mib*");

        Policy(freeMiB: 2100).CheckScratchDisks(scratch, _root);
    }

    [Test]
    public void CheckScratchDisks_RealFileSystem_ReadsFreeSpace()
    {
        var policy = new HostPathPolicy(new HostAccessOptions { MinFreeDiskMiB = long.MaxValue / (1024 * 1024 * 2) });

        var act = () => policy.CheckScratchDisks([new VolumeSpec { Id = "a", SizeInMb = 1 }], Path.Combine(_root, "not-yet-made"));

        act.Should().Throw<ScratchDiskRefusedException>().WithMessage("*MiB free in*");
    }
}

/// <summary>Images (issue 11): references are the images step's, and what it vouches for is checked narrowly.</summary>
public sealed class HostPathPolicyImageTests
{
    private string _root = null!;
    private HostPathPolicy _policy = null!;

    [SetUp]
    public void SetUp()
    {
        _root = Directory.CreateTempSubdirectory("hc-hostpath-img-").FullName;
        Directory.CreateDirectory(Path.Combine(_root, "images"));
        Directory.CreateDirectory(Path.Combine(_root, "cache"));
        _policy = new HostPathPolicy(new HostAccessOptions { ImageDirectories = [Path.Combine(_root, "images")], VolumeRoots = [Path.Combine(_root, "images")] });
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_root, recursive: true);

    [Test]
    public void Violations_OciKernelInitrdAndContainerSource_AreLeftToTheImagesStep()
    {
        var spec = new MicroVmSpec
        {
            Id = "vm",
            Kernel = new KernelSpec { Image = "localhost:5000/hypercore/default:1" },
            Initrd = new InitrdSpec { Image = "ghcr.io/org/initrd@sha256:" + new string('a', 64) },
            AdditionalVolumes = [new VolumeSpec { Id = "root", ContainerSource = "localhost:5000/rootfs:1" }],
        };

        _policy.Violations(spec).Should().BeEmpty();
    }

    [Test]
    public void CheckTrusted_ListedRegularFile_ReturnsItsRealPath()
    {
        var file = Path.Combine(_root, "cache", "vmlinux");
        File.WriteAllText(file, "k");

        _policy.CheckTrusted("kernel.image", file, new HashSet<string> { file }).Should().Be(file);
    }

    [Test]
    public void CheckTrusted_NotListed_Directory_Missing_AreRefused()
    {
        var file = Path.Combine(_root, "cache", "vmlinux");
        File.WriteAllText(file, "k");
        var dir = Path.Combine(_root, "cache");
        var missing = Path.Combine(_root, "cache", "gone");

        var notListed = () => _policy.CheckTrusted("kernel.image", file, new HashSet<string>());
        var directory = () => _policy.CheckTrusted("kernel.image", dir, new HashSet<string> { dir });
        var gone = () => _policy.CheckTrusted("kernel.image", missing, new HashSet<string> { missing });

        notListed.Should().Throw<HostPathNotAllowedException>().WithMessage("*was not prepared for this VM*");
        directory.Should().Throw<HostPathNotAllowedException>().WithMessage("*is a directory*");
        gone.Should().Throw<HostPathNotAllowedException>().WithMessage("*is missing*");
    }

    [Test]
    public void Validate_ContainerSource_MustBeAReferenceAndTheOnlySource()
    {
        MicroVmSpec With(VolumeSpec v) => new() { Id = "vm", Kernel = new KernelSpec { Image = "/k" }, AdditionalVolumes = [v] };

        MicroVmSpecValidator.Validate(With(new VolumeSpec { Id = "d", ContainerSource = "localhost:5000/rootfs:1" })).Should().BeEmpty();
        MicroVmSpecValidator.Validate(With(new VolumeSpec { Id = "d", ContainerSource = "ubuntu:22.04" }))
            .Should().ContainSingle().Which.Should().Contain("is not an OCI image reference; write it with its registry host");
        MicroVmSpecValidator.Validate(With(new VolumeSpec { Id = "d", ContainerSource = "localhost:5000/rootfs:1", HostPath = "/x.img" }))
            .Should().ContainSingle().Which.Should().Contain("gives both source.host_path and source.container_source");
    }
}

using System.Diagnostics;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;

namespace Hypercore.Drivers.Tests.Firecracker;

/// <summary>
/// What the jail holds before the jailer runs (no jailer binary here: the files are the daemon's part of it). Copies
/// go to the jailer's uid/gid; the caller's files keep their owner, a writable drive is the same inode, and a link
/// planted at a copy's place is replaced, not followed. Runs as root, as the daemon does.
/// </summary>
public sealed class JailFilesTests
{
    private Scratch _scratch = null!;

    [SetUp]
    public void SetUp() => _scratch = new Scratch();

    [TearDown]
    public async Task TearDown() => await _scratch.DisposeAsync();

    private static string OwnerOf(string path)
    {
        using var stat = Process.Start(new ProcessStartInfo("stat", ["-c", "%u:%g:%i", path]) { RedirectStandardOutput = true })!;
        var owner = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        return owner;
    }

    [Test]
    public async Task Prepare_CopiesAreTheJailersUsers_TheOriginalsAndTheWritableDriveKeepTheirOwner()
    {
        var options = new JailerOptions { Enabled = true, Uid = 65534, Gid = 65533, ChrootBaseDir = Path.Combine(_scratch.Root, "jail") };
        var vm = _scratch.Vm("jailed");
        var data = _scratch.File("data.img", "data\n");
        var prepared = new PreparedSpec
        {
            Vm = vm,
            KernelPath = _scratch.Kernel,
            InitrdPath = _scratch.Initrd,
            Volumes = [new PreparedVolume("root", _scratch.RootDisk, IsReadOnly: true, IsRoot: true, IsScratch: false),
                       new PreparedVolume("data", data, IsReadOnly: false, IsRoot: false, IsScratch: false)],
        };
        var root = JailerCommand.JailRoot(options, "/usr/bin/firecracker", vm.Uid);
        Directory.CreateDirectory(root);
        var hostFile = _scratch.File("host-secret", "root's\n");
        File.CreateSymbolicLink(Path.Combine(root, "kernel"), hostFile); // planted by a jailed VMM of an earlier run

        await JailFiles.PrepareAsync(options, "/usr/bin/firecracker", prepared, CancellationToken.None);

        foreach (var copy in new[] { "kernel", "initrd", "drive-root" })
        {
            var path = Path.Combine(root, copy);
            new FileInfo(path).LinkTarget.Should().BeNull($"{copy} is a copy, not a link");
            OwnerOf(path).Should().StartWith("65534:65533:", copy);
        }

        File.ReadAllText(Path.Combine(root, "kernel")).Should().Be(File.ReadAllText(_scratch.Kernel));
        foreach (var original in new[] { _scratch.Kernel, _scratch.Initrd, _scratch.RootDisk, hostFile, data })
        {
            OwnerOf(original).Should().StartWith("0:0:", $"{original} is the caller's and keeps its owner");
        }

        OwnerOf(Path.Combine(root, "drive-data")).Should().Be(OwnerOf(data), "a writable drive is a hard link: the same inode, owner unchanged");
    }
}

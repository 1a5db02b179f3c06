using System.Diagnostics;
using System.Net.Sockets;
using Hypercore.HostAccess;

namespace Hypercore.Core.Tests.HostAccess;

/// <summary>
/// <see cref="HostFiles.RealPath"/> (one lstat per component since issue 15) against coreutils' <c>realpath -m</c> on a
/// tree of files, directories, FIFOs, and absolute, relative, chained, dangling and directory symlinks, with missing tails.
/// </summary>
public sealed class HostFilesRealPathTests
{
    private string _root = null!;

    [SetUp]
    public void SetUp()
    {
        _root = Directory.CreateTempSubdirectory("hc-realpath-").FullName;
        BuildTree(_root);
    }

    /// <summary>The tree both classes resolve in: files, a FIFO, absolute, relative, chained, dangling and directory links.</summary>
    internal static void BuildTree(string root)
    {
        Directory.CreateDirectory(Path.Combine(root, "a", "b"));
        Directory.CreateDirectory(Path.Combine(root, "outside", "deep"));
        File.WriteAllText(Path.Combine(root, "a", "b", "file"), "x");
        File.WriteAllText(Path.Combine(root, "outside", "secret"), "x");
        using (var p = Process.Start("mkfifo", [Path.Combine(root, "a", "fifo")]))
        {
            p.WaitForExit();
            p.ExitCode.Should().Be(0);
        }

        File.CreateSymbolicLink(Path.Combine(root, "a", "abs"), Path.Combine(root, "outside", "secret"));
        File.CreateSymbolicLink(Path.Combine(root, "a", "rel"), "../outside/deep/../secret");
        File.CreateSymbolicLink(Path.Combine(root, "a", "chain"), "abs");
        File.CreateSymbolicLink(Path.Combine(root, "a", "dangling"), Path.Combine(root, "nowhere", "x"));
        Directory.CreateSymbolicLink(Path.Combine(root, "a", "dirlink"), Path.Combine(root, "outside", "deep"));
        Directory.CreateSymbolicLink(Path.Combine(root, "a", "b", "up"), "..");
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_root, recursive: true);

    private static string Coreutils(string path)
    {
        var start = new ProcessStartInfo("realpath", ["-m", "--", path]) { RedirectStandardOutput = true };
        using var p = Process.Start(start)!;
        var output = p.StandardOutput.ReadToEnd().TrimEnd('\n');
        p.WaitForExit();
        p.ExitCode.Should().Be(0);
        return output;
    }

    [TestCase("a/b/file")]
    [TestCase("a/b")]
    [TestCase("a/fifo")]
    [TestCase("a/abs")]
    [TestCase("a/rel")]
    [TestCase("a/chain")]
    [TestCase("a/dangling")]
    [TestCase("a/dirlink")]
    [TestCase("a/dirlink/missing/tail")]
    [TestCase("a/b/up/b/file")]
    [TestCase("a/b/up/dirlink/../secret")]
    [TestCase("a/missing/x")]
    [TestCase("a/./b/./file")]
    public void RealPath_SameAsCoreutilsRealpathM(string relative)
    {
        var path = _root + "/" + relative;

        HostFiles.RealPath(path).Should().Be(Coreutils(path));
    }
}

/// <summary>
/// issue 15 (handler6): <see cref="HostFiles.RealPath"/> asks the kernel (open O_PATH + readlink of /proc/self/fd/N) and
/// walks only where that cannot answer. Each case here is asked three ways: the kernel's answer (null or the walk's),
/// the walk itself (the rule), and RealPath (must be the walk's answer, or the walk's refusal).
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class HostFilesKernelRealPathTests
{
    private string _root = null!;
    private Socket? _socket;

    [SetUp]
    public void SetUp()
    {
        _root = Directory.CreateTempSubdirectory("hc-kernelpath-").FullName;
        HostFilesRealPathTests.BuildTree(_root);
        File.CreateSymbolicLink(Path.Combine(_root, "a", "null"), "/dev/null");
        File.CreateSymbolicLink(Path.Combine(_root, "a", "loop1"), "loop2");
        File.CreateSymbolicLink(Path.Combine(_root, "a", "loop2"), "loop1");
        File.CreateSymbolicLink(Path.Combine(_root, "a", "tofile-dot"), "b/file/.");
        File.CreateSymbolicLink(Path.Combine(_root, "a", "procroot"), "/proc/self/root" + _root + "/a/b/file");
        File.WriteAllText(Path.Combine(_root, "a", "x (deleted)"), "x");
        File.CreateSymbolicLink(Path.Combine(_root, "a", "todeleted"), "x (deleted)");
        File.WriteAllText(Path.Combine(_root, "a", "noperm"), "x");
        File.SetUnixFileMode(Path.Combine(_root, "a", "noperm"), UnixFileMode.None);
        _socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _socket.Bind(new UnixDomainSocketEndPoint(Path.Combine(_root, "a", "sock")));
    }

    [TearDown]
    public void TearDown()
    {
        _socket?.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    /// <summary>Paths that exist all the way: the kernel answers, with the walk's answer.</summary>
    [TestCase("a/b/file")]
    [TestCase("a/b")]
    [TestCase("a/b/")]
    [TestCase("a/fifo")]
    [TestCase("a/sock")]
    [TestCase("a/null")]
    [TestCase("a/noperm")]
    [TestCase("a/abs")]
    [TestCase("a/rel")]
    [TestCase("a/chain")]
    [TestCase("a/dirlink")]
    [TestCase("a/dirlink/")]
    [TestCase("a/b/up/b/file")]
    [TestCase("a/b/up/dirlink/../secret")]
    [TestCase("a/./b/./file")]
    [TestCase("a//b///file")]
    [TestCase("a/procroot")]
    [TestCase("a/x (deleted)")] // no link on the way: openat2 answers, /proc is not read
    public void Existing_KernelAnswers_SameAsTheWalk(string relative)
    {
        var path = _root + "/" + relative;

        var walked = HostFiles.Walk(path);
        HostFiles.KernelRealPath(path).Should().Be(walked, "the kernel resolves a path that exists");
        HostFiles.RealPath(path).Should().Be(walked);
    }

    /// <summary>Devices and system paths outside the test tree, links included.</summary>
    [TestCase("/dev/null")]
    [TestCase("/dev/zero")]
    [TestCase("/")]
    [TestCase("/proc/self/root")]
    [TestCase("/bin/sh")]
    [TestCase("/usr/bin")]
    [TestCase("/etc/os-release")]
    public void SystemPaths_KernelAnswers_SameAsTheWalk(string path)
    {
        var walked = HostFiles.Walk(path);
        HostFiles.KernelRealPath(path).Should().Be(walked);
        HostFiles.RealPath(path).Should().Be(walked);
    }

    /// <summary>A block device node made here (loop's major; O_PATH opens the node, never the device), and a link to it.</summary>
    [Test]
    public void ABlockDevice_KernelAnswers_SameAsTheWalk()
    {
        var device = Path.Combine(_root, "a", "blk");
        HostPathPolicyTests.Mknod(device, "b", 7, 0);
        File.CreateSymbolicLink(Path.Combine(_root, "a", "toblk"), "blk");
        HostFiles.Kind(device).Should().Be(HostFileKind.BlockDevice);

        foreach (var path in new[] { device, Path.Combine(_root, "a", "toblk") })
        {
            HostFiles.KernelRealPath(path).Should().Be(HostFiles.Walk(path)).And.Be(device);
        }
    }

    /// <summary>Where the kernel cannot answer exactly, it does not: the walk does, as before.</summary>
    [TestCase("a/missing/x")]
    [TestCase("a/dangling")]
    [TestCase("a/dangling/more")]
    [TestCase("a/dirlink/missing/tail")]
    [TestCase("a/b/file/.")] // ENOTDIR to the kernel; the walk skips "."
    [TestCase("a/tofile-dot")]
    [TestCase("a/b/file/x")]
    [TestCase("a/todeleted")] // a link to "x (deleted)": readlink's answer cannot be told from a deleted file's
    public void NotResolvableInTheKernel_TheWalkAnswers(string relative)
    {
        var path = _root + "/" + relative;

        HostFiles.KernelRealPath(path).Should().BeNull();
        HostFiles.RealPath(path).Should().Be(HostFiles.Walk(path));
    }

    [Test]
    public void ANormalPathWithoutLinks_IsItsOwnRealPath_ReturnedAsItIs()
    {
        var path = _root + "/a/b/file";

        HostFiles.KernelRealPath(path).Should().BeSameAs(path, "openat2 with RESOLVE_NO_SYMLINKS opened it: no link on the way");
        HostFiles.RealPath(path).Should().BeSameAs(path);
        HostFiles.RealPath(_root + "/a/abs").Should().Be(_root + "/outside/secret", "a link on the way: resolved through /proc/self/fd");
        HostFiles.RealPath(_root + "/a/b/up/b/file").Should().Be(path, "a link to a directory in the middle");
    }

    [Test]
    public void RelativeEmptyAndNul_AreLeftToTheWalk()
    {
        HostFiles.KernelRealPath("etc").Should().BeNull("the walk resolves a relative path from /, open(2) from the working directory");
        HostFiles.RealPath("etc").Should().Be(HostFiles.Walk("etc"));
        HostFiles.KernelRealPath("").Should().BeNull();
        HostFiles.RealPath("").Should().Be("/");
        var nul = _root + "/a/b\0/file";
        HostFiles.KernelRealPath(nul).Should().BeNull("C would end the path at the NUL");
        HostFiles.RealPath(nul).Should().Be(HostFiles.Walk(nul));
    }

    [Test]
    public void LinkLoop_RefusedByTheWalkAsBefore()
    {
        var path = _root + "/a/loop1";

        HostFiles.KernelRealPath(path).Should().BeNull("ELOOP");
        FluentActions.Invoking(() => HostFiles.RealPath(path)).Should().Throw<IOException>().WithMessage("*too many levels of symbolic links*");
    }

    [Test]
    public void ALinkSwappedBetweenCalls_IsSeenAtOnce()
    {
        var link = Path.Combine(_root, "a", "swap");
        File.CreateSymbolicLink(link, Path.Combine(_root, "a", "b", "file"));
        HostFiles.RealPath(link).Should().Be(Path.Combine(_root, "a", "b", "file"));

        File.Delete(link);
        File.CreateSymbolicLink(link, Path.Combine(_root, "outside", "secret"));
        HostFiles.RealPath(link).Should().Be(Path.Combine(_root, "outside", "secret"));
    }

    [Test]
    public void LeavesNoDescriptorOpen()
    {
        var before = Directory.GetFiles("/proc/self/fd").Length;
        for (var i = 0; i < 200; i++)
        {
            HostFiles.RealPath(_root + "/a/b/file");
            HostFiles.RealPath(_root + "/a/missing");
        }

        Directory.GetFiles("/proc/self/fd").Length.Should().BeLessThan(before + 10);
    }
}

using System.Diagnostics;
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
        Directory.CreateDirectory(Path.Combine(_root, "a", "b"));
        Directory.CreateDirectory(Path.Combine(_root, "outside", "deep"));
        File.WriteAllText(Path.Combine(_root, "a", "b", "file"), "x");
        File.WriteAllText(Path.Combine(_root, "outside", "secret"), "x");
        using (var p = Process.Start("mkfifo", [Path.Combine(_root, "a", "fifo")]))
        {
            p.WaitForExit();
            p.ExitCode.Should().Be(0);
        }

        File.CreateSymbolicLink(Path.Combine(_root, "a", "abs"), Path.Combine(_root, "outside", "secret"));
        File.CreateSymbolicLink(Path.Combine(_root, "a", "rel"), "../outside/deep/../secret");
        File.CreateSymbolicLink(Path.Combine(_root, "a", "chain"), "abs");
        File.CreateSymbolicLink(Path.Combine(_root, "a", "dangling"), Path.Combine(_root, "nowhere", "x"));
        Directory.CreateSymbolicLink(Path.Combine(_root, "a", "dirlink"), Path.Combine(_root, "outside", "deep"));
        Directory.CreateSymbolicLink(Path.Combine(_root, "a", "b", "up"), "..");
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

using System.Diagnostics;
using Hypercore.HostAccess;

namespace Hypercore.Core.Tests.HostAccess;

/// <summary>
/// <see cref="HostOwner.Set"/>: what the qemu-user launch, a snapshot's socket and a jail copy are given with. Owners are
/// read back with stat(1), which without -L reports a link itself. The tests run as root, as the daemon does.
/// </summary>
public sealed class HostOwnerTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hc-owner-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static string OwnerOf(string path)
    {
        using var stat = Process.Start(new ProcessStartInfo("stat", ["-c", "%u:%g", path]) { RedirectStandardOutput = true })!;
        var owner = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        stat.ExitCode.Should().Be(0);
        return owner;
    }

    [Test]
    public void EveryPath_GetsTheOwner()
    {
        var file = Path.Combine(_dir, "console.log");
        File.WriteAllText(file, "");
        var sockets = Directory.CreateDirectory(Path.Combine(_dir, "vmm")).FullName;

        HostOwner.Set(65534, 65534, file, sockets);

        OwnerOf(file).Should().Be("65534:65534");
        OwnerOf(sockets).Should().Be("65534:65534");

        HostOwner.Set(0, 0, sockets);
        OwnerOf(sockets).Should().Be("0:0");
    }

    [Test]
    public void Link_IsChangedItself_NeverTheFileItNames()
    {
        var target = Path.Combine(_dir, "host-file");
        File.WriteAllText(target, "root's");
        var link = Path.Combine(_dir, "qemu.log");
        File.CreateSymbolicLink(link, target);

        HostOwner.Set(65534, 65534, link);

        OwnerOf(link).Should().Be("65534:65534");
        OwnerOf(target).Should().Be("0:0", "a link planted where the daemon expects its own file must not hand the host file over");
    }

    [Test]
    public void MissingPath_Throws_NamingIt_AndTheEarlierPathsAreDone()
    {
        var first = Path.Combine(_dir, "first");
        File.WriteAllText(first, "");
        var missing = Path.Combine(_dir, "missing");

        var act = () => HostOwner.Set(65534, 65534, first, missing);

        act.Should().Throw<IOException>().WithMessage($"chown of {missing} to 65534:65534 failed: *(errno 2)");
        OwnerOf(first).Should().Be("65534:65534");
    }
}

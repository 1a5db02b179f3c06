using System.Diagnostics;
using Hypercore.HostAccess;

namespace Hypercore.Core.Tests.HostAccess;

/// <summary>
/// Issue 15 (fifth pass): <see cref="HostExecutable.Is(string)"/> answers in one stat what FileInfo.Exists and
/// File.GetUnixFileMode answered together; each entry here is asked both ways.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class HostExecutableTests
{
    private string _root = null!;

    [SetUp]
    public void SetUp() => _root = Directory.CreateTempSubdirectory("creates5-exec-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_root, recursive: true);

    /// <summary>The answer before issue 15's change, through the BCL.</summary>
    private static bool ByFileInfo(string path)
    {
        try
        {
            if (!new FileInfo(path).Exists)
            {
                return false;
            }

            const UnixFileMode anyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            return (System.IO.File.GetUnixFileMode(path) & anyExecute) != 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private string MakeFile(string name, UnixFileMode mode)
    {
        var path = Path.Combine(_root, name);
        System.IO.File.WriteAllText(path, "x");
        System.IO.File.SetUnixFileMode(path, mode);
        return path;
    }

    [Test]
    public void Is_EachKindOfEntry_AnswersAsFileInfoAndTheModeDid()
    {
        const UnixFileMode rw = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        var fifo = Path.Combine(_root, "fifo");
        using (var p = Process.Start("mkfifo", ["-m", "755", fifo]))
        {
            p.WaitForExit();
        }

        var executable = MakeFile("exe", rw | UnixFileMode.UserExecute);
        var plain = MakeFile("plain", rw);
        var groupOnly = MakeFile("group", rw | UnixFileMode.GroupExecute);
        var otherOnly = MakeFile("other", rw | UnixFileMode.OtherExecute);
        var link = Path.Combine(_root, "link");
        System.IO.File.CreateSymbolicLink(link, executable);
        var linkToPlain = Path.Combine(_root, "link-plain");
        System.IO.File.CreateSymbolicLink(linkToPlain, plain);
        var dangling = Path.Combine(_root, "dangling");
        System.IO.File.CreateSymbolicLink(dangling, Path.Combine(_root, "none"));
        var dirLink = Path.Combine(_root, "dir-link");
        Directory.CreateSymbolicLink(dirLink, _root);
        string[] entries =
        [
            executable, plain, groupOnly, otherOnly, link, linkToPlain, dangling, dirLink, fifo, _root,
            Path.Combine(_root, "missing"), Path.Combine(plain, "under-a-file"), "/dev/null", "/bin/sh", "/usr/bin",
        ];

        foreach (var entry in entries)
        {
            HostExecutable.Is(entry).Should().Be(ByFileInfo(entry), entry);
        }

        HostExecutable.Is(executable).Should().BeTrue();
        HostExecutable.Is(otherOnly).Should().BeTrue();
        HostExecutable.Is(fifo).Should().BeTrue("FileInfo counts anything but a directory, and so does this");
        HostExecutable.Is(plain).Should().BeFalse();
        HostExecutable.Is(dangling).Should().BeFalse();
        HostExecutable.Is(_root).Should().BeFalse();
    }

    [Test]
    public void IsWithModified_EachKindOfEntry_AnswersAsIsWithTheModificationTimeOfWhatItNames()
    {
        // Issue 15 (vcache16): the driver's version cache is keyed on this time, from the one stat that checks the binary.
        const UnixFileMode rwx = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        var executable = MakeFile("exe", rwx);
        var modified = new DateTime(2031, 5, 6, 7, 8, 9, DateTimeKind.Utc).AddTicks(1_234_567);
        System.IO.File.SetLastWriteTimeUtc(executable, modified);
        var link = Path.Combine(_root, "link");
        System.IO.File.CreateSymbolicLink(link, executable);
        var plain = MakeFile("plain", UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var expected = new HostFileTime(new DateTimeOffset(modified).ToUnixTimeSeconds(), 123_456_700);

        HostFiles.PathLookups = 0;
        HostExecutable.Is(executable, out var ofFile).Should().BeTrue();
        HostExecutable.Is(link, out var ofLink).Should().BeTrue();
        HostFiles.PathLookups.Should().Be(2, "one stat each gives both answers");

        ofFile.Should().Be(expected);
        ofLink.Should().Be(expected, "a link is followed: the time is its target's, as File.GetLastWriteTimeUtc gave it");
        foreach (var entry in new[] { plain, _root, Path.Combine(_root, "missing"), "/dev/null", "/bin/sh", "/usr/bin" })
        {
            HostExecutable.Is(entry, out var time).Should().Be(HostExecutable.Is(entry), entry);
            if (HostExecutable.Is(entry))
            {
                var bcl = System.IO.File.GetLastWriteTimeUtc(entry);
                (DateTime.UnixEpoch.Ticks + (time.Seconds * TimeSpan.TicksPerSecond) + (time.Nanoseconds / 100)).Should().Be(bcl.Ticks, entry);
            }
            else
            {
                time.Should().Be(default(HostFileTime), entry);
            }
        }
    }
}

using Hypercore.Drivers.Vmm;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>
/// Issue 15 (fifth pass): the locator keeps its candidate paths per name and PATH value and reads a regular file's
/// mode from the one stat behind Exists; its answers stay those of a full walk on every call.
/// </summary>
[NonParallelizable] // changes the process's PATH
public sealed class BinaryLocatorTests
{
    private string _dir = null!;
    private string? _savedPath;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("creates5-locator-").FullName;
        _savedPath = Environment.GetEnvironmentVariable("PATH");
    }

    [TearDown]
    public void TearDown()
    {
        Environment.SetEnvironmentVariable("PATH", _savedPath);
        Directory.Delete(_dir, recursive: true);
    }

    private string Make(string relative, UnixFileMode mode)
    {
        var path = Path.Combine(_dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "#!/bin/sh\n");
        File.SetUnixFileMode(path, mode);
        return path;
    }

    private const UnixFileMode Rwx = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode Rw = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [Test]
    public void IsExecutable_EachKindOfEntry_AnswersAsTheModeOfWhatItNames()
    {
        var exe = Make("exe", Rwx);
        var plain = Make("plain", Rw);
        var others = Make("others", UnixFileMode.UserRead | UnixFileMode.OtherExecute);
        var linkToExe = Path.Combine(_dir, "link-exe");
        File.CreateSymbolicLink(linkToExe, exe);
        var linkToPlain = Path.Combine(_dir, "link-plain");
        File.CreateSymbolicLink(linkToPlain, plain);
        var dangling = Path.Combine(_dir, "dangling");
        File.CreateSymbolicLink(dangling, Path.Combine(_dir, "nothing"));
        var directory = Directory.CreateDirectory(Path.Combine(_dir, "dir")).FullName; // has x bits, is not a program

        BinaryLocator.IsExecutable(exe).Should().BeTrue();
        BinaryLocator.IsExecutable(others).Should().BeTrue();
        BinaryLocator.IsExecutable(plain).Should().BeFalse();
        BinaryLocator.IsExecutable(linkToExe).Should().BeTrue();
        BinaryLocator.IsExecutable(linkToPlain).Should().BeFalse("a link is judged by the mode of its target");
        BinaryLocator.IsExecutable(dangling).Should().BeFalse();
        BinaryLocator.IsExecutable(directory).Should().BeFalse();
        BinaryLocator.IsExecutable(Path.Combine(_dir, "missing")).Should().BeFalse();
    }

    [Test]
    public void Resolve_BareName_FindsTheFirstExecutableOnPathAndListsWhatItTried()
    {
        Make("a/tool", Rw); // not executable: skipped, as a shell would
        var b = Make("b/tool", Rwx);
        Make("c/tool", Rwx);
        Environment.SetEnvironmentVariable("PATH", string.Join(':', Path.Combine(_dir, "a"), Path.Combine(_dir, "b"), Path.Combine(_dir, "a"), Path.Combine(_dir, "c")));

        var (path, tried) = BinaryLocator.Resolve("tool");

        path.Should().Be(b);
        tried.Should().Equal(Path.Combine(_dir, "a", "tool"), b);
    }

    [Test]
    public void Resolve_CalledAgain_SeesFilesInstalledAndRemovedSince()
    {
        Environment.SetEnvironmentVariable("PATH", string.Join(':', Path.Combine(_dir, "a"), Path.Combine(_dir, "b")));
        var first = BinaryLocator.Resolve("late-tool");
        first.Path.Should().BeNull();
        first.Tried.Should().Equal(Path.Combine(_dir, "a", "late-tool"), Path.Combine(_dir, "b", "late-tool"));

        var b = Make("b/late-tool", Rwx);
        BinaryLocator.Resolve("late-tool").Path.Should().Be(b);

        var a = Make("a/late-tool", Rwx);
        BinaryLocator.Resolve("late-tool").Path.Should().Be(a, "a binary installed earlier on PATH wins at once");

        File.Delete(a);
        File.SetUnixFileMode(b, Rw);
        BinaryLocator.Resolve("late-tool").Path.Should().BeNull();
    }

    [Test]
    public void Resolve_PathChanged_UsesTheNewPath()
    {
        var a = Make("a/moved-tool", Rwx);
        var b = Make("b/moved-tool", Rwx);
        Environment.SetEnvironmentVariable("PATH", Path.Combine(_dir, "a"));
        BinaryLocator.Resolve("moved-tool").Path.Should().Be(a);

        Environment.SetEnvironmentVariable("PATH", Path.Combine(_dir, "b"));
        var (path, tried) = BinaryLocator.Resolve("moved-tool");

        path.Should().Be(b);
        tried.Should().Equal(b);
    }

    [Test]
    public void Resolve_TriedList_IsTheCallersOwn()
    {
        Environment.SetEnvironmentVariable("PATH", string.Join(':', Path.Combine(_dir, "a"), Path.Combine(_dir, "b")));
        var (_, tried) = BinaryLocator.Resolve("own-tool");
        if (tried is IList<string> { IsReadOnly: false } writable)
        {
            writable[0] = "changed"; // a copy may be written to; the locator's own list must not change with it
        }

        BinaryLocator.Resolve("own-tool").Tried.Should().Equal(Path.Combine(_dir, "a", "own-tool"), Path.Combine(_dir, "b", "own-tool"));
    }
}

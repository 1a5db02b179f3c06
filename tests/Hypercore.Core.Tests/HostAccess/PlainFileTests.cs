using System.Diagnostics;
using Hypercore.HostAccess;

namespace Hypercore.Core.Tests.HostAccess;

/// <summary>
/// <see cref="HostFiles.OpenPlainFile"/>: what the daemon, as root, opens in a directory the VMM's user can write to.
/// </summary>
public sealed class PlainFileTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hc-plainfile-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void RegularFile_IsOpened_ForReadingAndForWriting()
    {
        var path = Path.Combine(_dir, "console.log");
        File.WriteAllText(path, "guest");

        using (var read = HostFiles.OpenPlainFile(path, FileAccess.Read))
        using (var stream = new FileStream(read!, FileAccess.Read))
        using (var reader = new StreamReader(stream))
        {
            reader.ReadToEnd().Should().Be("guest");
        }

        using (var write = HostFiles.OpenPlainFile(path, FileAccess.ReadWrite))
        using (var stream = new FileStream(write!, FileAccess.ReadWrite))
        {
            stream.SetLength(2);
        }

        File.ReadAllText(path).Should().Be("gu");
    }

    [Test]
    public void Missing_IsNull() =>
        HostFiles.OpenPlainFile(Path.Combine(_dir, "nothing"), FileAccess.Read).Should().BeNull();

    [TestCase(FileAccess.Read)]
    [TestCase(FileAccess.ReadWrite)]
    public void SymbolicLink_ToAFile_IsRefusedAndTheTargetIsUntouched(FileAccess access)
    {
        var target = Path.Combine(_dir, "shadow");
        File.WriteAllText(target, "secret");
        var link = Path.Combine(_dir, "console.log.1");
        File.CreateSymbolicLink(link, target);

        var act = () => HostFiles.OpenPlainFile(link, access);

        act.Should().Throw<NotAPlainFileException>().WithMessage($"{link} is a symbolic link, not a plain file*")
            .Which.FilePath.Should().Be(link);
        File.ReadAllText(target).Should().Be("secret");
    }

    [Test]
    public void DanglingLink_IsRefused_NotReportedMissing()
    {
        var link = Path.Combine(_dir, "console.log");
        File.CreateSymbolicLink(link, Path.Combine(_dir, "not-there"));

        var act = () => HostFiles.OpenPlainFile(link, FileAccess.ReadWrite);

        act.Should().Throw<NotAPlainFileException>();
        File.Exists(Path.Combine(_dir, "not-there")).Should().BeFalse("nothing is created through the link");
    }

    [Test]
    public void Fifo_IsRefused_WithoutWaitingForAWriter()
    {
        var fifo = Path.Combine(_dir, "console.log.1");
        using (var mkfifo = Process.Start("mkfifo", [fifo]))
        {
            mkfifo.WaitForExit();
            mkfifo.ExitCode.Should().Be(0);
        }

        // A plain open(O_RDONLY) of a FIFO blocks until a writer comes: the task would never finish.
        var open = Task.Run(() => HostFiles.OpenPlainFile(fifo, FileAccess.Read));
        try
        {
            ((IAsyncResult)open).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(10)).Should().BeTrue("O_NONBLOCK: a planted FIFO cannot hang the daemon");
            open.Exception.Should().NotBeNull();
            open.Exception!.InnerException.Should().BeOfType<NotAPlainFileException>().Which.Message.Should().Contain("is a Fifo");
        }
        finally
        {
            if (!open.IsCompleted)
            {
                using var writer = new FileStream(fifo, FileMode.Open, FileAccess.Write); // lets a blocked open go
            }
        }
    }

    [Test]
    public void FileWithASecondHardLink_IsRefused()
    {
        var original = Path.Combine(_dir, "elsewhere");
        File.WriteAllText(original, "secret");
        var linked = Path.Combine(_dir, "console.log.1");
        using (var ln = Process.Start("ln", [original, linked]))
        {
            ln.WaitForExit();
            ln.ExitCode.Should().Be(0);
        }

        var act = () => HostFiles.OpenPlainFile(linked, FileAccess.Read);

        act.Should().Throw<NotAPlainFileException>().WithMessage("*a file with 2 hard links*");
    }

    [Test]
    public void Directory_IsRefused()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_dir, "console.log")).FullName;

        var act = () => HostFiles.OpenPlainFile(dir, FileAccess.Read);

        act.Should().Throw<NotAPlainFileException>().WithMessage("*is a Directory*");
    }
}

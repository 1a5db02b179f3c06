using Hypercore.Drivers.Vmm;

namespace Hypercore.Drivers.Tests.Vmm;

public sealed class GuestPanicTests
{
    private const string Panic = "[    1.234567] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100";

    [Test]
    public void FromText_PanicInTheLastBoot_ReturnsThePanicLine()
    {
        var console = $"[    0.000000] Linux version 6.1.0-cloud\nbooting\n{Panic}\r\n[    1.3] Kernel Offset: disabled\n";

        GuestPanic.FromText(console).Should().Be("guest kernel panic: Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100");
    }

    [Test]
    public void FromText_PanicOnlyInAnEarlierBoot_ReturnsNull()
    {
        var console = $"Linux version 6.1\n{Panic}\nLinux version 6.1\nHYPERCORE-GUEST-READY\nreboot: Power down\n";

        GuestPanic.FromText(console).Should().BeNull("the log is appended across restarts; an old panic is not this boot's");
    }

    [TestCase("")]
    [TestCase("Linux version 6.1\nreboot: Power down\n")]
    [TestCase("a line mentioning Kernel panic without the marker\n")]
    public void FromText_NoPanic_ReturnsNull(string console) => GuestPanic.FromText(console).Should().BeNull();

    [Test]
    public void FromText_PanicAsLastBytesWithoutNewline_ReturnsIt() =>
        GuestPanic.FromText("Linux version 6.1\nKernel panic - not syncing: VFS: Unable to mount root fs")
            .Should().Be("guest kernel panic: Kernel panic - not syncing: VFS: Unable to mount root fs");

    [Test]
    public void FromConsole_MissingFile_ReturnsNull() =>
        GuestPanic.FromConsole(Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"), "console.log")).Should().BeNull();

    [Test]
    public void FromConsole_PanicAfterMoreThanTheTail_StillFound()
    {
        var path = Path.Combine(Path.GetTempPath(), "hypercore-panic-" + Guid.NewGuid().ToString("N") + ".log");
        try
        {
            File.WriteAllText(path, "Linux version 6.1\n" + new string('x', 3 * GuestPanic.TailBytes) + "\n" + Panic + "\n");

            GuestPanic.FromConsole(path).Should().StartWith("guest kernel panic: Kernel panic - not syncing: Attempted to kill init!");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void FromConsole_ConsoleIsALinkToAFileThatPanics_NotFollowed()
    {
        var dir = Directory.CreateTempSubdirectory("hypercore-panic-").FullName;
        try
        {
            var elsewhere = Path.Combine(dir, "elsewhere.log");
            File.WriteAllText(elsewhere, "Linux version 6.1\n" + Panic + "\n");
            var console = Path.Combine(dir, "console.log");
            File.CreateSymbolicLink(console, elsewhere);

            GuestPanic.FromConsole(console).Should().BeNull("a link in a VM's directory is never read through");
            GuestPanic.FromConsole(elsewhere).Should().NotBeNull("the same text in a plain file is read");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

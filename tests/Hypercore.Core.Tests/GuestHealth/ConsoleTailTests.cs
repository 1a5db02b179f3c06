using Hypercore.Consoles;
using Hypercore.GuestHealth;

namespace Hypercore.Core.Tests.GuestHealth;

public sealed class ConsoleTailTests
{
    private string _dir = null!;
    private string _log = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("hypercore-tail-").FullName;
        _log = Path.Combine(_dir, "console.log");
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void ReadLines_PartialLine_ReturnedOnlyOnceComplete()
    {
        var tail = new ConsoleTail(_log, 0);
        tail.ReadLines().Should().BeEmpty("the file does not exist yet");

        File.AppendAllText(_log, "one\r\ntw");
        tail.ReadLines().Should().Equal("one");
        File.AppendAllText(_log, "o\n");
        tail.ReadLines().Should().Equal("two");
        tail.ReadLines().Should().BeEmpty();
    }

    [Test]
    public void ReadLines_RotatedBetweenReads_LinesWrittenBeforeTheRotationAreNotLost()
    {
        var tail = new ConsoleTail(_log, 0);
        File.AppendAllText(_log, "first\n");
        tail.ReadLines().Should().Equal("first");

        File.AppendAllText(_log, "second\nthi");
        ConsoleLogFiles.RotateIfOver(_log, 4).Should().BeGreaterThan(0);
        File.AppendAllText(_log, "rd\nfourth\n");

        tail.ReadLines().Should().Equal("second", "third", "fourth");
    }

    [Test]
    public void ReadLines_FromABootOffset_SkipsEarlierBoots()
    {
        File.AppendAllText(_log, "old boot READY\n");
        var tail = new ConsoleTail(_log, new FileInfo(_log).Length);
        File.AppendAllText(_log, "new boot\n");

        tail.ReadLines().Should().Equal("new boot");
    }

    [Test]
    public void ReadLines_ConsoleIsALink_NotFollowed()
    {
        var target = Path.Combine(_dir, "secret");
        File.WriteAllText(target, "host secret\n");
        File.CreateSymbolicLink(_log, target);

        new ConsoleTail(_log, 0).ReadLines().Should().BeEmpty();
    }
}

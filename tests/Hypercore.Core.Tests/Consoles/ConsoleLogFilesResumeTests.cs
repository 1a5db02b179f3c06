using Hypercore.Consoles;

namespace Hypercore.Core.Tests.Consoles;

/// <summary>
/// <see cref="ConsoleLogFiles.Resume"/>: the one rule both console readers (the log streamer and the guest-health tail)
/// follow after a rotation or a shrink.
/// </summary>
public sealed class ConsoleLogFilesResumeTests
{
    private string _dir = null!;
    private string _log = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("hc-resume-").FullName;
        _log = Path.Combine(_dir, "console.log");
    }

    [TearDown]
    public void TearDown()
    {
        Directory.Delete(_dir, recursive: true);
        ConsoleLogFiles.ForgetRemovedLogs();
    }

    /// <param name="rotations">Rotations made before the reader looks.</param>
    /// <param name="seen">Rotations the reader had counted.</param>
    [TestCase(0, 0, 10, 25, null, 10, false, TestName = "No rotation, grown: the log from the offset")]
    [TestCase(0, 0, 10, 10, null, 10, false, TestName = "No rotation, unchanged: the log from the offset")]
    [TestCase(0, 0, 10, 4, null, 0, true, TestName = "No rotation, shorter: replaced, the log from 0, the cut line dropped")]
    [TestCase(1, 0, 10, 4, 10L, 0, false, TestName = "One rotation: .1 from the offset, then the log from 0")]
    [TestCase(2, 0, 10, 4, 0L, 0, true, TestName = "Two rotations: .1 from 0, the log from 0, the cut line dropped")]
    [TestCase(3, 1, 10, 40, 0L, 0, true, TestName = "Two more than seen, the log longer than the offset: still .1 from 0")]
    [TestCase(2, 1, 10, 40, 10L, 0, false, TestName = "One more than seen: .1 from the offset")]
    [TestCase(0, 2, 10, 12, null, 10, false, TestName = "Fewer than seen (counts dropped with the VM): read as none")]
    public void Resume_SaysWhereToReadNext(int rotations, long seen, long offset, long length, long? rotatedFrom, long from, bool cut)
    {
        for (var i = 0; i < rotations; i++)
        {
            File.WriteAllText(_log, "0123456789abcdef");
            ConsoleLogFiles.RotateIfOver(_log, 4).Should().Be(16);
        }

        lock (ConsoleLogFiles.RotationGate(_log))
        {
            ConsoleLogFiles.Resume(_log, seen, offset, length)
                .Should().Be(new ConsoleResume(rotations, rotatedFrom, from, cut));
        }
    }
}

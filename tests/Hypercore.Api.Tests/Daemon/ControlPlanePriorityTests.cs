using System.Runtime.Versioning;
using Hypercore.Daemon.Cli;
using Hypercore.Daemon.Hosting;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>Issue 15, density: the daemon's autogroup priority, against stand-in procfs files (never the test host's own).</summary>
[SupportedOSPlatform("linux")]
public sealed class ControlPlanePriorityTests
{
    private DirectoryInfo _dir = null!;
    private string _enabled = "";
    private string _autogroup = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("hypercore-density-priority-");
        _enabled = Path.Combine(_dir.FullName, "sched_autogroup_enabled");
        _autogroup = Path.Combine(_dir.FullName, "autogroup");
        File.WriteAllText(_enabled, "1\n");
        File.WriteAllText(_autogroup, "/autogroup-42 nice 0\n");
    }

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    [Test]
    public void Apply_AutogroupOn_WritesTheNiceValue()
    {
        var outcome = new ControlPlanePriority(_enabled, _autogroup).Apply(-10, NullLogger.Instance);

        outcome.Should().Be(ControlPlanePriority.Outcome.Set);
        File.ReadAllText(_autogroup).Should().Be("-10");
    }

    [Test]
    public void Apply_AutogroupOff_WritesNothing()
    {
        File.WriteAllText(_enabled, "0\n");

        var outcome = new ControlPlanePriority(_enabled, _autogroup).Apply(-10, NullLogger.Instance);

        outcome.Should().Be(ControlPlanePriority.Outcome.AutogroupOff);
        File.ReadAllText(_autogroup).Should().Be("/autogroup-42 nice 0\n");
    }

    [Test]
    public void Apply_NoAutogroupSupport_WritesNothing()
    {
        var outcome = new ControlPlanePriority(Path.Combine(_dir.FullName, "missing"), _autogroup).Apply(-10, NullLogger.Instance);

        outcome.Should().Be(ControlPlanePriority.Outcome.AutogroupOff);
        File.ReadAllText(_autogroup).Should().Be("/autogroup-42 nice 0\n");
    }

    [Test]
    public void Apply_Zero_LeavesTheAutogroupAsItIs()
    {
        var outcome = new ControlPlanePriority(_enabled, _autogroup).Apply(0, NullLogger.Instance);

        outcome.Should().Be(ControlPlanePriority.Outcome.Unchanged);
        File.ReadAllText(_autogroup).Should().Be("/autogroup-42 nice 0\n");
    }

    [Test]
    public void Apply_WriteFails_ReportsFailedWithoutThrowing()
    {
        var unwritable = Path.Combine(_dir.FullName, "no-such-dir", "autogroup");

        var outcome = new ControlPlanePriority(_enabled, unwritable).Apply(-10, NullLogger.Instance);

        outcome.Should().Be(ControlPlanePriority.Outcome.Failed);
    }

    [Test]
    public void ApplyConfigured_UnsetInASharedSession_LeavesTheSessionsAutogroup()
    {
        var outcome = new ControlPlanePriority(_enabled, _autogroup, leadsItsSession: () => false).ApplyConfigured(null, NullLogger.Instance);

        outcome.Should().Be(ControlPlanePriority.Outcome.Unchanged);
        File.ReadAllText(_autogroup).Should().Be("/autogroup-42 nice 0\n");
    }

    [Test]
    public void ApplyConfigured_UnsetAsSessionLeader_SetsTheDefault()
    {
        var outcome = new ControlPlanePriority(_enabled, _autogroup, leadsItsSession: () => true).ApplyConfigured(null, NullLogger.Instance);

        outcome.Should().Be(ControlPlanePriority.Outcome.Set);
        File.ReadAllText(_autogroup).Should().Be("-20", "the default weighs as ~87 guest sessions: 100 starts at 1.1 × bare QEMU where −10 took 1.2–1.5 × (bench/NOTES.md, s28)");
    }

    [Test]
    public void ApplyConfigured_ExplicitValueInASharedSession_IsApplied()
    {
        var outcome = new ControlPlanePriority(_enabled, _autogroup, leadsItsSession: () => false).ApplyConfigured(-5, NullLogger.Instance);

        outcome.Should().Be(ControlPlanePriority.Outcome.Set);
        File.ReadAllText(_autogroup).Should().Be("-5");
    }

    [TestCase("/autogroup-42 nice 0\n", 0)]
    [TestCase("/autogroup-7 nice -10", -10)]
    [TestCase("garbage", null)]
    public void Current_ReadsTheNiceValue(string text, int? expected)
    {
        File.WriteAllText(_autogroup, text);

        new ControlPlanePriority(_enabled, _autogroup).Current().Should().Be(expected);
    }

    [TestCase("-21")]
    [TestCase("20")]
    [TestCase("high")]
    public async Task Cli_AutogroupNiceOutOfRange_IsRefusedWithExit2(string value)
    {
        var dir = Directory.CreateTempSubdirectory("hypercore-density-settings-");
        try
        {
            var stderr = new StringWriter();

            var code = await DaemonCli.RunAsync(["run", "--state-dir", dir.FullName, $"--autogroup-nice={value}"], new StringWriter(), stderr);

            code.Should().Be(2);
            stderr.ToString().Should().Contain("autogroup-nice: expected a whole number from -20 to 19");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}

using Hypercore.Benchmarks.Machine;
using Hypercore.Benchmarks.Processes;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;

namespace Hypercore.Benchmarks.Tests.Machine;

/// <summary>What docs/benchmarks.md says about a run's validity, and the CPU reading behind "server CPU per Create".</summary>
public class ReportValidityTests
{
    private static readonly MachineInfo Machine = new("Test CPU", 2, 4 * 1048576, "6.1.0", "Debian", ".NET 10", "QEMU 7.2", "2026-11-29 22:00 UTC");

    private static string Markdown(LoadAverage start) =>
        ReportWriter.Markdown(
            [new ResultRow("API", "durable Creates/s, 64 client(s)", 1234, "/s", "method")],
            Machine, start, new LoadAverage(1, 1, 1), RunValidity.Decide(start, Machine.Cores), BenchOptions.Parse([]), TimeSpan.FromMinutes(1), notes: null);

    [Test]
    public void Markdown_LoadAboveCores_SaysNotValidAndStillShowsTheNumbers()
    {
        var md = Markdown(new LoadAverage(4.46, 12.19, 20.98));

        md.Should().Contain("**This run is NOT VALID: 1-minute load average 4.46 at the start is above the 2 cores")
            .And.Contain("| load average (1/5/15 min) | 4.46 12.19 20.98 at the start, 1.00 1.00 1.00 at the end |")
            .And.Contain("| 1,234 /s |");
    }

    [Test]
    public void Markdown_QuietMachine_SaysValidWithoutTheWarning()
    {
        var md = Markdown(new LoadAverage(0.3, 0.2, 0.1));

        md.Should().NotContain("NOT VALID").And.Contain("| run | valid: 1-minute load average 0.30 at the start, not above the 2 cores |");
    }

    [Test]
    public void CpuTimeOfStat_CommandWithSpacesAndParens_AddsUtimeAndStime()
    {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        const string stat = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 123 456 789";

        ProcFs.CpuTimeOfStat(stat).Should().Be(TimeSpan.FromSeconds(3.25));
    }
}

using System.Diagnostics;
using Hypercore.Benchmarks.Processes;
using Hypercore.Benchmarks.Runner;

namespace Hypercore.Benchmarks.Tests.Processes;

/// <summary>The run's reaper kills what the run started, never another process that only names its work directory.</summary>
public class ReaperTests
{
    [TestCase("/tmp/pub/vistarad", true)]
    [TestCase("/usr/bin/qemu-system-x86_64", true)]
    [TestCase("firecracker", true)]
    [TestCase("/usr/bin/cloud-hypervisor", true)]
    [TestCase("/bin/bash", false)]
    [TestCase("/usr/bin/perf", false)]
    [TestCase("/usr/bin/dotnet", false)]
    public void IsRunProgram_ByExecutable(string argv0, bool expected) =>
        ProcFs.IsRunProgram([argv0, "--state-dir", "/tmp/work"]).Should().Be(expected);

    [Test]
    public void IsRunProgram_DotnetRunningTheDaemonDll_IsTheRuns() =>
        ProcFs.IsRunProgram(["dotnet", "/src/bin/vistarad.dll", "run"]).Should().BeTrue();

    [Test]
    public void IsRunProgram_NoCommandLine_IsNot()
    {
        ProcFs.IsRunProgram(null).Should().BeFalse();
        ProcFs.IsRunProgram([]).Should().BeFalse();
    }

    [Test]
    public async Task Reap_KillsOwnDescendantsButNotAnotherSessionsProcess()
    {
        var work = Directory.CreateTempSubdirectory("hypercore-density-reaper-");
        var file = Path.Combine(work.FullName, "f");
        await File.WriteAllTextAsync(file, "");
        // Both name the work directory and run until killed; neither is a program the run starts.
        using var child = Process.Start(new ProcessStartInfo("tail", ["-f", file]))!;
        // Not a descendant: setsid -f forks it off and its parent exits, so it is re-parented to init (or a subreaper).
        using var starter = Process.Start(new ProcessStartInfo("setsid", ["-f", "tail", "-f", file]) { RedirectStandardOutput = true })!;
        await starter.WaitForExitAsync();
        int? stranger = null;
        try
        {
            for (var i = 0; i < 100 && stranger is null; i++)
            {
                stranger = ProcFs.ProcessesMentioning(work.FullName).Where(p => p != child.Id).Cast<int?>().FirstOrDefault();
                await Task.Delay(20);
            }

            stranger.Should().NotBeNull("setsid -f started the second tail");
            ProcFs.DescendsFrom(stranger!.Value, Environment.ProcessId).Should().BeFalse();

            var reaped = await BenchContext.ReapAsync(work.FullName);

            reaped.Should().Be(1);
            (await child.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token).ContinueWith(t => t.IsCompletedSuccessfully)).Should().BeTrue();
            ProcFs.IsAlive(stranger.Value).Should().BeTrue("only the run's processes are reaped");
        }
        finally
        {
            if (stranger is { } pid)
            {
                ProcFs.Signal(pid, ProcFs.SigKill);
            }

            if (!child.HasExited)
            {
                child.Kill();
            }

            work.Delete(recursive: true);
        }
    }
}

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>
/// Issue 15 (vcache16): what one availability check of the QEMU driver costs in CPU once its answer is known (the
/// reconciler asks on every pass). A measurement for bench/NOTES, not a check: run by name.
/// </summary>
[NonParallelizable]
public sealed class AvailabilityCheckCostTests
{
    private const int Calls = 100_000;

    [TestCase("qemu-system-x86_64")]
    [TestCase("/usr/bin/qemu-system-x86_64")]
    [Explicit("a measurement, not a check")]
    public async Task Measure_CheckAvailability_ThreadCpuPerCall(string binary)
    {
        using var bed = new QemuTestBed();
        var driver = bed.Driver(o => o.BinaryPath = binary);
        (await driver.CheckAvailabilityAsync()).Available.Should().BeTrue(); // runs --version once
        for (var i = 0; i < Calls / 10; i++)
        {
            await driver.CheckAvailabilityAsync(); // warm: tiered JIT
        }

        for (var round = 0; round < 5; round++)
        {
            var (cpu, wall) = (ThreadCpu(), System.Diagnostics.Stopwatch.GetTimestamp());
            for (var i = 0; i < Calls; i++)
            {
                // Completed tasks: the loop stays on this thread, so its CPU time is the checks'.
                if (!driver.CheckAvailabilityAsync().IsCompleted)
                {
                    Assert.Fail("a known answer is a completed task");
                }
            }

            var used = ThreadCpu() - cpu;
            var elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(wall);
            TestContext.Progress.WriteLine(
                $"{binary}: {Calls} checks, thread CPU {used.TotalMilliseconds:0} ms = {used.TotalNanoseconds / Calls / 1000:0.000} µs/check (wall {elapsed.TotalMilliseconds:0} ms)");
        }
    }

    /// <summary>This thread's time on CPU: the first field of /proc/thread-self/schedstat, in nanoseconds.</summary>
    private static TimeSpan ThreadCpu() =>
        TimeSpan.FromTicks(long.Parse(File.ReadAllText("/proc/thread-self/schedstat").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) / 100);
}

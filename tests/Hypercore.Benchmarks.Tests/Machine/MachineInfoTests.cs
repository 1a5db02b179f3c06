using Hypercore.Benchmarks.Machine;

namespace Hypercore.Benchmarks.Tests.Machine;

/// <summary>/proc parsing and the run's validity, on injected /proc text (never the machine running the tests).</summary>
public class MachineInfoTests
{
    private const string TwoCoreCpuinfo =
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: fpu vme\n\n" +
        "processor\t: 1\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: fpu vme\n\n";

    [Test]
    public void CpuModelOf_Cpuinfo_ReturnsFirstModelName() =>
        MachineInfo.CpuModelOf(TwoCoreCpuinfo).Should().Be("AMD EPYC 7B13 64-Core Processor");

    [Test]
    public void CpuModelOf_NoModelName_ReturnsUnknown() =>
        MachineInfo.CpuModelOf("processor\t: 0\nHardware\t: BCM2835\n").Should().Be("unknown");

    [Test]
    public void CoresOf_TwoProcessorEntries_ReturnsTwo() =>
        MachineInfo.CoresOf(TwoCoreCpuinfo, fallback: 64).Should().Be(2);

    [Test]
    public void CoresOf_NoProcessorEntries_ReturnsFallback() =>
        MachineInfo.CoresOf("", fallback: 3).Should().Be(3);

    [Test]
    public void MemInfoKb_MemTotal_ReturnsKilobytes() =>
        MachineInfo.MemInfoKb("MemTotal:       24641376 kB\nMemFree:         1234 kB\n", "MemTotal").Should().Be(24641376);

    [Test]
    public void MemInfoKb_MissingKey_ReturnsZero() =>
        MachineInfo.MemInfoKb("MemFree:         1234 kB\n", "MemTotal").Should().Be(0);

    [Test]
    public void LoadAverageParse_ProcLoadavg_ReturnsThreeAverages() =>
        LoadAverage.Parse("2.29 7.96 10.46 3/612 98765\n").Should().Be(new LoadAverage(2.29, 7.96, 10.46));

    [TestCase("")]
    [TestCase("2.29 7.96")]
    [TestCase("a b c 1/2 3")]
    public void LoadAverageParse_Malformed_ReturnsNull(string text) =>
        LoadAverage.Parse(text).Should().BeNull();

    [Test]
    public void Decide_LoadAboveCores_IsNotValidAndSaysWhy()
    {
        var v = RunValidity.Decide(new LoadAverage(2.01, 1, 1), cores: 2);

        v.Valid.Should().BeFalse();
        v.Reason.Should().StartWith("NOT VALID").And.Contain("2.01").And.Contain("2 cores");
    }

    [Test]
    public void Decide_LoadEqualToCores_IsValid() =>
        RunValidity.Decide(new LoadAverage(2.00, 9, 9), cores: 2).Valid.Should().BeTrue("only the 1-minute average counts, and only above the core count");

    [Test]
    public void Decide_LoadBelowCoresButBusyEarlier_IsValid() =>
        RunValidity.Decide(new LoadAverage(0.5, 7.96, 10.46), cores: 2).Valid.Should().BeTrue();

    [Test]
    public void Decide_UnreadableLoad_IsNotValid() =>
        RunValidity.Decide(null, cores: 2).Valid.Should().BeFalse();
}

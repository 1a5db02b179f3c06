namespace Hypercore.Drivers.Qemu.Tests;

public sealed class HostTscTests
{
    [Test]
    public void Parse_ConstantTsc_ReturnsFirstCpuMhzInKhz()
    {
        const string cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2596.146\nflags\t\t: fpu tsc constant_tsc nonstop_tsc\n\nprocessor\t: 1\ncpu MHz\t\t: 1200.000\n";

        HostTsc.Parse(cpuinfo).Should().Be(2596146);
    }

    [Test]
    public void Parse_NoConstantTsc_ReturnsNull()
    {
        HostTsc.Parse("processor\t: 0\ncpu MHz\t\t: 2596.146\nflags\t\t: fpu tsc\n").Should().BeNull();
    }

    [Test]
    public void ReadKhz_MissingFile_ReturnsNull()
    {
        HostTsc.ReadKhz("/nonexistent/cpuinfo").Should().BeNull();
    }
}

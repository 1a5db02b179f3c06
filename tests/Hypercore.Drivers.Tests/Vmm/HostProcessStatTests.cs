using System.Text;
using Hypercore.Drivers.Vmm;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>Issue 15, density: /proc/pid/stat parsed in place (state and start time), as the Split-based reader did.</summary>
public sealed class HostProcessStatTests
{
    private const string Tail = " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 99 100\n";

    [Test]
    public void ParseStat_PlainLine_ReadsStateAndStartTime()
    {
        var stat = HostProcess.ParseStat(Encoding.ASCII.GetBytes("1234 (qemu-system-x86) S" + Tail));

        stat.Should().Be(('S', 424242L));
    }

    [Test]
    public void ParseStat_CommWithSpacesAndParentheses_CountsFieldsFromTheLastParenthesis()
    {
        var stat = HostProcess.ParseStat(Encoding.ASCII.GetBytes("77 (a) b (c)) Z" + Tail));

        stat.Should().Be(('Z', 424242L));
    }

    [TestCase("1234 (qemu) S 1 2 3")]
    [TestCase("1234 (qemu)")]
    [TestCase("1234 qemu S 1 2")]
    [TestCase("")]
    [TestCase("1234 (qemu) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x42 99")]
    public void ParseStat_NotAStatLine_IsNull(string text)
    {
        HostProcess.ParseStat(Encoding.ASCII.GetBytes(text)).Should().BeNull();
    }

    [Test]
    public void ParseStat_StartTimeIsTheLastField_IsRead()
    {
        var stat = HostProcess.ParseStat(Encoding.ASCII.GetBytes("1 (x) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 31337\n"));

        stat.Should().Be(('R', 31337L));
    }

    [Test]
    public void ParseStat_OfThisProcess_MatchesTheSplitReading()
    {
        var text = File.ReadAllText("/proc/self/stat");
        var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');

        var stat = HostProcess.ParseStat(Encoding.ASCII.GetBytes(text));

        stat.Should().Be((fields[0][0], long.Parse(fields[19], System.Globalization.CultureInfo.InvariantCulture)));
        HostProcess.StartTicks(Environment.ProcessId).Should().Be(stat!.Value.StartTicks);
    }
}

using Hypercore.Benchmarks.Api;

namespace Hypercore.Benchmarks.Tests.Api;

/// <summary>Issue 15 goal 2 (sixteenth pass): the ratio is taken against the mean of a baseline before the Creates and one after them.</summary>
public class BaselineBracketTests
{
    private static Dictionary<string, double> Child(double before, double? after, double creates = 6000)
    {
        var r = new Dictionary<string, double> { ["rate"] = creates, ["base_rate"] = before, ["base_p99_ms"] = 13.1, ["base_cpu_us_per"] = 91.6 };
        if (after is { } a)
        {
            r["base_after_rate"] = a;
            r["base_after_p99_ms"] = 11.2;
            r["base_after_cpu_us_per"] = 88.4;
        }

        return r;
    }

    [Test]
    public void Ratio_IsAgainstTheMeanOfTheBaselineBeforeAndAfter()
    {
        // A host that slowed down linearly over the run: 14,000 empty calls/s before the Creates, 10,000 after.
        var r = Child(before: 14000, after: 10000);

        BaselineBracket.Rate(r).Should().Be(12000);
        BaselineBracket.Ratio(r).Should().Be(0.5);
        BaselineBracket.RatioBefore(r).Should().BeApproximately(6000.0 / 14000, 1e-12, "the ratio to the first window alone is still given");
    }

    [Test]
    public void Ratio_WithoutASecondBaseline_IsAgainstTheFirst()
    {
        // A result of an older runner (or a child that failed before the second window) keeps the old meaning.
        var r = Child(before: 12000, after: null);

        BaselineBracket.Rate(r).Should().Be(12000);
        BaselineBracket.Ratio(r).Should().Be(0.5);
        BaselineBracket.Reference(r).Should().Be("baseline 12,000 /s");
        BaselineBracket.Text(r, "the same node").Should().Be("baseline 12,000 empty calls/s on the same server (p99 13.1 ms)");
    }

    [Test]
    public void Ratio_WithoutAnyBaseline_IsNotANumber()
    {
        BaselineBracket.Ratio(Child(before: 0, after: 0)).Should().Be(double.NaN);
        BaselineBracket.Rate(Child(before: 8000, after: 0)).Should().Be(8000, "a second window that answered nothing is not averaged in");
    }

    [Test]
    public void Report_AddsTheMeanAndBothRatios()
    {
        var r = Child(before: 13000, after: 11000);

        BaselineBracket.Report(r);

        r["base_mean_rate"].Should().Be(12000);
        r["ratio"].Should().Be(0.5);
        r["ratio_before"].Should().BeApproximately(6000.0 / 13000, 1e-12);
    }

    [Test]
    public void Texts_NameBothWindowsAndWhereEachRan()
    {
        var r = Child(before: 13000, after: 11000);

        BaselineBracket.Reference(r).Should().Be("baseline 12,000 /s: before 13,000, after 11,000");
        BaselineBracket.Text(r, "the same node").Should()
            .Contain("baseline 12,000 empty calls/s, the mean of 13,000 on the same node before the Creates (p99 13.1 ms, 91.6 µs per call)")
            .And.Contain("11,000 on a fresh one after them (p99 11.2 ms, 88.4 µs per call)")
            .And.Contain("0.462 × the one before alone");
    }
}

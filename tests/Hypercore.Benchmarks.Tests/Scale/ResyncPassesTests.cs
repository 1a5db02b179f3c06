using Hypercore.Benchmarks.Runner;
using Hypercore.Benchmarks.Scale;

namespace Hypercore.Benchmarks.Tests.Scale;

/// <summary>
/// Issue 15 goal 6 (s38): the resync rows are the pass with the median time of several, each a fresh process on the
/// same records. One 3–5 s pass on a shared two-core machine read 5.44 s in a full run and 3.16 s minutes later.
/// </summary>
public class ResyncPassesTests
{
    private static Dictionary<string, double> Pass(double seconds, double cpu = 4.5, double rss = 205) => new()
    {
        ["pass_s"] = seconds, ["pass_cpu_s"] = cpu, ["rss_mb"] = rss,
    };

    [Test]
    public void MedianPass_OfThree_IsTheMiddleTime_WithThatPasssOwnFigures()
    {
        var slow = Pass(5.44, cpu: 7.61, rss: 206);
        var fast = Pass(3.16, cpu: 4.47, rss: 205);
        var middle = Pass(3.9, cpu: 5.2, rss: 212);

        var median = ReconcileScale.MedianPass([slow, fast, middle]);

        median.Should().BeSameAs(middle);
        median["pass_cpu_s"].Should().Be(5.2, "the CPU and memory rows come from the same pass as the time");
    }

    [Test]
    public void MedianPass_OfAnEvenCount_IsTheSlowerMiddle_NeverRoundingATimeDown()
    {
        var a = Pass(3.0);
        var b = Pass(4.0);
        var c = Pass(5.0);
        var d = Pass(6.0);

        ReconcileScale.MedianPass([d, a, c, b]).Should().BeSameAs(c);
        ReconcileScale.MedianPass([a, b]).Should().BeSameAs(b);
        ReconcileScale.MedianPass([a]).Should().BeSameAs(a);
        FluentActions.Invoking(() => ReconcileScale.MedianPass([])).Should().Throw<ArgumentException>();
    }

    [Test]
    public void PassesText_ListsEveryPassInOrder_AndNothingForOne()
    {
        var passes = new List<Dictionary<string, double>> { Pass(5.44, 7.61, 206), Pass(3.16, 4.47, 205), Pass(3.9, 5.2, 212) };

        ReconcileScale.PassesText(passes).Should().Be(
            "; the figures (here and in the CPU and memory rows) are those of the pass with the median time of 3, each a fresh process on the same records, one after the other: " +
            "passes 5.44, 3.16, 3.9 s; CPU 7.61, 4.47, 5.2 s; VmRSS 206, 205, 212 MB");
        ReconcileScale.PassesText(passes.Take(1).ToList()).Should().BeEmpty();
    }

    [Test]
    public void ScaleRounds_AreThreeInAFullRun_OneInQuickAndSmoke_AndPositive()
    {
        BenchOptions.Parse([]).ScaleRounds.Should().Be(3);
        BenchOptions.Parse(["--quick"]).ScaleRounds.Should().Be(1);
        BenchOptions.Parse(["--smoke"]).ScaleRounds.Should().Be(1);
        BenchOptions.Parse(["--smoke", "--scale-rounds", "2"]).ScaleRounds.Should().Be(2);
        FluentActions.Invoking(() => BenchOptions.Parse(["--scale-rounds", "0"])).Should().Throw<ArgumentException>().WithMessage("*--scale-rounds*positive*");
    }
}

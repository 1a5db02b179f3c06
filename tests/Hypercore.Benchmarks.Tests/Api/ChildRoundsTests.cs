using Hypercore.Benchmarks.Api;
using Hypercore.Benchmarks.Runner;

namespace Hypercore.Benchmarks.Tests.Api;

/// <summary>Issue 15 goal 2 (twenty-third pass): a separate-process API row is the run with the median ratio of several.</summary>
public class ChildRoundsTests
{
    private static Dictionary<string, double> Run(double creates, double baseline, double p99 = 12.5, double cpu = 100) => new()
    {
        ["rate"] = creates, ["base_rate"] = baseline, ["base_after_rate"] = baseline, ["p99_ms"] = p99, ["cpu_us_per"] = cpu,
    };

    [Test]
    public void Median_OfThree_IsTheMiddleRatio_WithThatRunsOwnFigures()
    {
        var low = Run(3300, 10000, p99: 17.7, cpu: 121);
        var high = Run(4700, 10000, p99: 11.6, cpu: 81);
        var middle = Run(8400, 20000, p99: 13.4, cpu: 98); // 0.42: the middle ratio, though neither the middle rate nor baseline

        var median = ChildRounds.Median([high, low, middle]);

        median.Should().BeSameAs(middle);
        BaselineBracket.Ratio(median).Should().BeApproximately(0.42, 1e-12);
    }

    [Test]
    public void Median_OfAnEvenCount_IsTheLowerMiddle_AndARunWithoutBaselineCountsLowest()
    {
        var a = Run(4000, 10000);
        var b = Run(4500, 10000);
        var c = Run(5000, 10000);
        var noBaseline = Run(5000, 0); // NaN ratio: a failed baseline never becomes the row

        ChildRounds.Median([c, a, b, noBaseline]).Should().BeSameAs(a, "of 0.40, 0.45 and 0.50 behind a NaN, the lower middle is 0.40");
        ChildRounds.Median([c, b]).Should().BeSameAs(b, "an even count never rounds up");
        ChildRounds.Median([c]).Should().BeSameAs(c);
        FluentActions.Invoking(() => ChildRounds.Median([])).Should().Throw<ArgumentException>();
    }

    [Test]
    public void Text_ListsEveryRunInOrder_AndNothingForOneRun()
    {
        var runs = new List<Dictionary<string, double>> { Run(4700, 10000, 11.6, 81), Run(3300, 10000, 17.7, 121), Run(4200, 10000, 13.4, 98) };

        ChildRounds.Text(runs).Should().Be(
            "; the figures are those of the run with the median ratio of 3 (each a fresh server with its own two baselines, one after the other): " +
            "ratios 0.47, 0.33, 0.42; Create p99 11.6, 17.7, 13.4 ms; server CPU per Create 81, 121, 98 µs");
        ChildRounds.Text(runs.Take(1).ToList()).Should().BeEmpty();
    }

    [Test]
    public async Task RunAsync_RunsEachRoundOnceInOrder()
    {
        var seen = new List<int>();

        var runs = await ChildRounds.RunAsync(3, round =>
        {
            seen.Add(round);
            return Task.FromResult(Run(round * 1000, 10000));
        });

        seen.Should().Equal(1, 2, 3);
        runs.Select(r => r["rate"]).Should().Equal(1000, 2000, 3000);
    }

    [Test]
    public void ApiRounds_AreThreeInAFullRun_OneInQuickAndSmoke_AndPositive()
    {
        BenchOptions.Parse([]).ApiRounds.Should().Be(3);
        BenchOptions.Parse(["--quick"]).ApiRounds.Should().Be(1);
        BenchOptions.Parse(["--smoke"]).ApiRounds.Should().Be(1);
        BenchOptions.Parse(["--smoke", "--api-rounds", "5"]).ApiRounds.Should().Be(5);
        FluentActions.Invoking(() => BenchOptions.Parse(["--api-rounds", "0"])).Should().Throw<ArgumentException>().WithMessage("*--api-rounds*positive*");
    }

    [Test]
    public void EachRun_GetsAStateDirectoryOfItsOwn()
    {
        var parent = Directory.CreateTempSubdirectory("hc-rounds-").FullName;
        try
        {
            var first = ChildRounds.FreshDirectory(parent, "api-64-node");
            first.Should().Be(Path.Combine(parent, "api-64-node"));
            Directory.CreateDirectory(first);
            var second = ChildRounds.FreshDirectory(parent, "api-64-node");
            second.Should().Be(Path.Combine(parent, "api-64-node-2"), "the second run must not start on the first run's records");
            Directory.CreateDirectory(second);
            ChildRounds.FreshDirectory(parent, "api-64-node").Should().Be(Path.Combine(parent, "api-64-node-3"));
        }
        finally
        {
            Directory.Delete(parent, recursive: true);
        }
    }
}

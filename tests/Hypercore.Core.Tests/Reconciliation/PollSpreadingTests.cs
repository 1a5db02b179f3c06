using Hypercore.Reconciliation;

namespace Hypercore.Core.Tests.Reconciliation;

/// <summary>Issue 15: polls of live VMs stay within a rate budget however many VMs there are, and drift apart.</summary>
public class PollSpreadingTests
{
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(2);

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(100)]
    [TestCase(1_700)]
    public void Interval_FewVms_IsThePollInterval(int count) =>
        PollSpreading.Interval(Poll, 1000, count).Should().Be(Poll);

    [TestCase(10_000)]
    [TestCase(100_000)]
    public void Interval_ManyVms_KeepsTheAverageRateWithinTheBudget(int count)
    {
        var interval = PollSpreading.Interval(Poll, 1000, count);

        interval.Should().BeGreaterThan(Poll);
        var averageDelay = interval * (1 - PollSpreading.JitterFraction / 2);
        (count / averageDelay.TotalSeconds).Should().BeApproximately(1000, 1);
    }

    [Test]
    public void Interval_100000Vms_WorstCaseDetectionIsAbout114Seconds() =>
        PollSpreading.Interval(Poll, 1000, 100_000).TotalSeconds.Should().BeApproximately(114.3, 0.1);

    [TestCase(0.0, 2000)]
    [TestCase(0.5, 1750)]
    [TestCase(0.999999, 1500)]
    public void Delay_IsTheIntervalLessUpToAQuarter_NeverLonger(double random01, int expectedMs) =>
        PollSpreading.Delay(Poll, random01).TotalMilliseconds.Should().BeApproximately(expectedMs, 1);

    [Test]
    public void Delay_RandomOutsideTheRange_IsClamped()
    {
        PollSpreading.Delay(Poll, -1).Should().Be(Poll);
        PollSpreading.Delay(Poll, 7).Should().Be(Poll * 0.75);
    }

    [Test]
    public void Delays_OfVmsReconciledTogether_Spread()
    {
        var random = new Random(15);
        var delays = Enumerable.Range(0, 1000).Select(_ => PollSpreading.Delay(Poll, random.NextDouble()).TotalMilliseconds).ToList();

        delays.Should().OnlyContain(d => d >= 1500 && d <= 2000);
        delays.Distinct().Count().Should().BeGreaterThan(900, "a burst of VMs must not keep being polled in one burst");
    }

    [TestCase(0)]
    [TestCase(-5)]
    public void Options_MaxPollsPerSecondBelowOne_IsRefused(int value)
    {
        var result = new ReconcilerOptionsValidator().Validate(null, new ReconcilerOptions { NodeName = "n", MaxPollsPerSecond = value });

        result.Failed.Should().BeTrue();
        result.FailureMessage.Should().Contain("Reconciler:MaxPollsPerSecond must be at least 1");
    }
}

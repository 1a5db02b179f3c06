using Hypercore.MicroVms;
using Hypercore.Reconciliation;

namespace Hypercore.Core.Tests.Reconciliation;

/// <summary>Issue 15 (tidy5): the periodic resync cut into slices over its interval.</summary>
public class ResyncRoundsTests
{
    private static readonly TimeSpan FiveMinutes = TimeSpan.FromMinutes(5);

    private static VmKey[] Keys(int n) => Enumerable.Range(0, n).Select(i => new VmKey("default", $"vm-{i}")).ToArray();

    [TestCase(0, 1)]
    [TestCase(1, 1)]
    [TestCase(ResyncRounds.SliceSize, 1)]
    [TestCase(ResyncRounds.SliceSize + 1, 2)]
    [TestCase(15_000, 59)]
    [TestCase(100_000, 300)] // one slice a second at most
    public void SlicesFor_FiveMinuteInterval(int records, int slices) =>
        ResyncRounds.SlicesFor(records, FiveMinutes).Should().Be(slices);

    [Test]
    public void SlicesFor_IntervalShorterThanTheSliceGap_OneSlice() =>
        ResyncRounds.SlicesFor(100_000, TimeSpan.FromMilliseconds(500)).Should().Be(1);

    [Test]
    public void Round_FewRecords_OneSliceWithEveryKey_AsTheOneBurstResync()
    {
        var rounds = new ResyncRounds(FiveMinutes);
        var keys = Keys(ResyncRounds.SliceSize);
        rounds.Begin(keys).Should().Be(FiveMinutes);
        rounds.NextSlice().ToArray().Should().Equal(keys);
        rounds.RoundDone.Should().BeTrue();
        rounds.NextSlice().IsEmpty.Should().BeTrue();
    }

    [TestCase(15_000)]
    [TestCase(100_000)]
    [TestCase(1_001)]
    public void Round_ManyRecords_EveryKeyOnceInEvenSlicesSpreadOverTheInterval(int records)
    {
        var rounds = new ResyncRounds(FiveMinutes);
        var keys = Keys(records);
        var slices = ResyncRounds.SlicesFor(records, FiveMinutes);
        var gap = rounds.Begin(keys);
        (gap * slices).Should().BeCloseTo(FiveMinutes, TimeSpan.FromMilliseconds(1), "the last slice goes out one gap before the next round");

        var given = new List<VmKey>();
        var sizes = new List<int>();
        while (!rounds.RoundDone)
        {
            var slice = rounds.NextSlice();
            sizes.Add(slice.Length);
            given.AddRange(slice.ToArray());
        }

        sizes.Should().HaveCount(slices);
        (sizes.Max() - sizes.Min()).Should().BeLessThanOrEqualTo(1);
        given.Should().Equal(keys, "each key exactly once, in the order given");
    }

    [Test]
    public void Begin_AgainAfterARound_StartsOverWithTheNewKeys()
    {
        var rounds = new ResyncRounds(FiveMinutes);
        rounds.RoundDone.Should().BeTrue("no round has begun");
        rounds.Begin(Keys(1000));
        rounds.NextSlice();
        rounds.RoundDone.Should().BeFalse();
        while (!rounds.RoundDone)
        {
            rounds.NextSlice();
        }

        var next = Keys(10);
        rounds.Begin(next).Should().Be(FiveMinutes);
        rounds.NextSlice().ToArray().Should().Equal(next);
    }
}

using Hypercore.MicroVms;

namespace Hypercore.Core.Tests.MicroVms;

/// <summary>
/// Conditions.Set and Find lost their LINQ (issue 15, allocations per Create): they must answer exactly what the
/// LINQ form answered, including for lists that are not sorted or hold a type twice (read from a hand-edited store).
/// </summary>
public class ConditionsTests
{
    private static readonly string[] Types = ["Ready", "Admitted", "ImageReady", "GuestReady", "Synchronized", "B", "a", ""];

    [Test]
    public void Set_RandomLists_MatchesTheLinqDefinition()
    {
        var random = new Random(15);
        var now = DateTimeOffset.UnixEpoch.AddDays(1);
        for (var round = 0; round < 5_000; round++)
        {
            var existing = Enumerable.Range(0, random.Next(0, 7))
                .Select(i => new Condition(Types[random.Next(Types.Length)], (ConditionStatus)random.Next(3), $"r{i}", $"m{i}", DateTimeOffset.UnixEpoch.AddSeconds(i), i))
                .ToList();
            var type = Types[random.Next(Types.Length)];
            var status = (ConditionStatus)random.Next(3);

            var actual = Conditions.Set(existing, type, status, "why", "what", 7, now);

            actual.Should().Equal(Reference(existing, type, status, "why", "what", 7, now), $"round {round}");
            // Kept compactly (issue 15, survivors; s31): packed up to six, else an array of the exact size, never a List.
            actual.Should().Match<IReadOnlyList<Condition>>(l => l is PackedConditions || (l is Condition[] && ((Condition[])l).Length == l.Count && l.Count > PackedConditions.Capacity));
        }
    }

    [Test]
    public void Set_SameStatus_KeepsTheTransitionTime()
    {
        var since = DateTimeOffset.UnixEpoch.AddHours(1);
        IReadOnlyList<Condition> existing = [new Condition("Ready", ConditionStatus.True, "a", "b", since, 1)];

        var kept = Conditions.Set(existing, "Ready", ConditionStatus.True, "c", "d", 2, since.AddHours(1));
        var flipped = Conditions.Set(existing, "Ready", ConditionStatus.False, "c", "d", 2, since.AddHours(1));

        kept.Single().LastTransitionTime.Should().Be(since);
        flipped.Single().LastTransitionTime.Should().Be(since.AddHours(1));
    }

    [Test]
    public void Set_TypeHeldTwice_LeavesOneOfItInAListWithoutEmptySlots()
    {
        var since = DateTimeOffset.UnixEpoch;
        IReadOnlyList<Condition> existing =
        [
            new Condition("Ready", ConditionStatus.True, "1", "", since, 1),
            new Condition("Paused", ConditionStatus.False, "", "", since, 1),
            new Condition("Ready", ConditionStatus.False, "2", "", since, 1),
        ];

        var actual = Conditions.Set(existing, "Ready", ConditionStatus.True, "3", "", 2, since.AddHours(1));

        actual.Should().HaveCount(2).And.NotContainNulls();
        actual.Select(c => c.Type).Should().Equal("Paused", "Ready");
        actual[1].Should().Be(new Condition("Ready", ConditionStatus.True, "3", "", since, 2), "the first of the type decides the transition time");
    }

    [Test]
    public void Set_ResultIsNotTheInputAndWritingTheInputLaterDoesNotReachIt()
    {
        var since = DateTimeOffset.UnixEpoch;
        var existing = new List<Condition> { new("Paused", ConditionStatus.False, "", "", since, 1) };

        var actual = Conditions.Set(existing, "Ready", ConditionStatus.True, "r", "m", 1, since);
        existing.Clear();

        actual.Select(c => c.Type).Should().Equal("Paused", "Ready");
    }

    [Test]
    public void Set_NothingChanges_ReturnsTheSameListWithoutAllocating()
    {
        var since = DateTimeOffset.UnixEpoch;
        var existing = Conditions.Set(Conditions.Set([], "Ready", ConditionStatus.True, "Running", "up", 3, since), "Paused", ConditionStatus.False, "NotPaused", "", 3, since);

        var again = Conditions.Set(existing, "Ready", ConditionStatus.True, "Running", "up", 3, since.AddHours(1));
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            again = Conditions.Set(again, "Paused", ConditionStatus.False, "NotPaused", "", 3, since.AddHours(2));
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0, "issue 15, alloc9: every pass sets Ready, Synchronized and Paused again");
        again.Should().BeSameAs(existing);
        Conditions.Set(existing, "Ready", ConditionStatus.True, "Running", "up", 4, since).Should().NotBeSameAs(existing, "the generation moved");
        Conditions.Set(existing, "Ready", ConditionStatus.True, "Running", "down", 3, since).Should().NotBeSameAs(existing);
        Conditions.Set(existing, "Ready", ConditionStatus.True, "Started", "up", 3, since).Should().NotBeSameAs(existing);
        Conditions.Set(existing, "Ready", ConditionStatus.False, "Running", "up", 3, since).Should().NotBeSameAs(existing);
    }

    [Test]
    public void Set_RandomArrays_MatchesTheLinqDefinition()
    {
        // As Set_RandomLists_…, with arrays (what Set itself makes) and updates that often change nothing: the same list
        // may come back only when it equals the new one.
        var random = new Random(9);
        var now = DateTimeOffset.UnixEpoch.AddDays(1);
        for (var round = 0; round < 5_000; round++)
        {
            var existing = Enumerable.Range(0, random.Next(0, 6))
                .Select(i => new Condition(Types[random.Next(3)], (ConditionStatus)random.Next(2), "why", "what", DateTimeOffset.UnixEpoch.AddSeconds(i), 7))
                .ToArray();
            if (random.Next(2) == 0)
            {
                existing = existing.DistinctBy(c => c.Type).OrderBy(c => c.Type, StringComparer.Ordinal).ToArray();
            }

            var type = Types[random.Next(3)];
            var status = (ConditionStatus)random.Next(2);

            var actual = Conditions.Set(existing, type, status, "why", "what", 7, now);

            actual.Should().Equal(Reference(existing, type, status, "why", "what", 7, now), $"round {round}");
            actual.Should().Match<IReadOnlyList<Condition>>(l => l is PackedConditions || ReferenceEquals(l, existing) || (l is Condition[] && ((Condition[])l).Length == l.Count));
        }
    }

    [Test]
    public void Find_ReturnsTheFirstOfTheTypeOrNull()
    {
        var first = new Condition("Ready", ConditionStatus.True, "1", "", DateTimeOffset.UnixEpoch, 1);
        var status = new MicroVmStatus
        {
            Conditions = [new Condition("A", ConditionStatus.False, "", "", DateTimeOffset.UnixEpoch, 1), first, first with { Reason = "2" }],
        };

        status.FindCondition("Ready").Should().Be(first, "equal to the first, not the second (its reason differs)");
        status.FindCondition("Missing").Should().BeNull();
        new MicroVmStatus().FindCondition("Ready").Should().BeNull();
    }

    private static List<Condition> Reference(
        IReadOnlyList<Condition> existing, string type, ConditionStatus status, string reason, string message, long generation, DateTimeOffset now)
    {
        var old = existing.FirstOrDefault(c => c.Type == type);
        var since = old is not null && old.Status == status ? old.LastTransitionTime : now;
        var updated = new Condition(type, status, reason, message, since, generation);
        return existing.Where(c => c.Type != type).Append(updated).OrderBy(c => c.Type, StringComparer.Ordinal).ToList();
    }
}

using Hypercore.MicroVms;

namespace Hypercore.Core.Tests.MicroVms;

/// <summary>
/// Issue 15, s31: a status keeps up to six conditions packed, the templates (everything but the time) and their order
/// shared between statuses. It must read back exactly what was set, in the order given, to the tick, and weigh a
/// fraction of the four <see cref="Condition"/> objects and their array it replaces.
/// </summary>
public class PackedConditionsTests
{
    private static readonly DateTimeOffset At = new DateTimeOffset(2026, 12, 4, 23, 59, 58, TimeSpan.Zero).AddTicks(1_234_567);

    private static IReadOnlyList<Condition> Running(DateTimeOffset at, long generation = 1)
    {
        var conditions = Conditions.Set([], "Admitted", ConditionStatus.True, "Admitted", "", generation, at);
        conditions = Conditions.Set(conditions, Conditions.Paused, ConditionStatus.False, "NotPaused", "", generation, at);
        conditions = Conditions.Set(conditions, Conditions.Ready, ConditionStatus.True, "Running", "", generation, at.AddTicks(1));
        return Conditions.Set(conditions, Conditions.Synchronized, ConditionStatus.True, Conditions.ReasonReconciled, "", generation, at.AddTicks(2));
    }

    [Test]
    public void Status_KeepsUpToSixPacked_InTheOrderGiven_ToTheTick()
    {
        Condition[] given =
        [
            new("Ready", ConditionStatus.True, "Running", "pid 7 « ошибка »", At, 3),
            new("Admitted", ConditionStatus.Unknown, "Waiting", "", At.ToOffset(TimeSpan.FromHours(2)).AddTicks(-1), 1),
            new("Ready", ConditionStatus.False, "Twice", "a hand-edited record", DateTimeOffset.MinValue, 0),
        ];

        var status = new MicroVmStatus { Conditions = given };

        status.Conditions.Should().BeOfType<PackedConditions>();
        status.Conditions.Should().Equal(given, "in the order given, a type held twice included");
        status.Conditions[1].LastTransitionTime.UtcTicks.Should().Be(At.UtcTicks - 1);
        status.Conditions[1].LastTransitionTime.Offset.Should().Be(TimeSpan.Zero, "times are held in UTC");
        status.Conditions.Select(c => c.LastTransitionTime.UtcTicks).Should().Equal(given.Select(c => c.LastTransitionTime.UtcTicks));
        status.FindCondition("Ready").Should().Be(given[0]);
        status.FindCondition("Paused").Should().BeNull();
        ((Func<Condition>)(() => status.Conditions[3])).Should().Throw<IndexOutOfRangeException>();
    }

    [Test]
    public void Status_MoreThanSix_KeepsAnExactSizeArray()
    {
        var seven = Enumerable.Range(0, 7).Select(i => new Condition($"T{i}", ConditionStatus.True, "R", "", At.AddTicks(i), 1)).ToList();

        var status = new MicroVmStatus { Conditions = seven };
        var eighth = Conditions.Set(status.Conditions, "T7", ConditionStatus.False, "R", "", 1, At);
        var six = new MicroVmStatus { Conditions = seven.Take(6).ToList() };

        status.Conditions.Should().BeOfType<Condition[]>().Which.Should().Equal(seven);
        eighth.Should().BeOfType<Condition[]>().Which.Should().HaveCount(8);
        six.Conditions.Should().BeOfType<PackedConditions>().Which.Should().Equal(seven.Take(6));
        Conditions.Set(six.Conditions, "T6", ConditionStatus.True, "R", "", 1, At.AddTicks(6)).Should().BeOfType<Condition[]>().Which.Should().Equal(seven);
    }

    [Test]
    public void TwoVmsSayingTheSameAtOtherTimes_ShareTheirTemplatesAndShape()
    {
        var a = (PackedConditions)Running(At);
        var b = (PackedConditions)Running(At.AddSeconds(3));
        var c = (PackedConditions)Running(At, generation: 2);

        b.Shape.Should().BeSameAs(a.Shape);
        c.Shape.Should().NotBeSameAs(a.Shape, "another generation says something else");
        a.Should().NotEqual(b, "their times differ");
        new MicroVmStatus { Conditions = a }.Should().NotBe(new MicroVmStatus { Conditions = b });
        new MicroVmStatus { Conditions = a }.Should().Be(new MicroVmStatus { Conditions = Running(At) });
        new MicroVmStatus { Conditions = a }.Should().Be(new MicroVmStatus { Conditions = Running(At).ToArray().Select(x => x with { LastTransitionTime = x.LastTransitionTime.ToOffset(TimeSpan.FromHours(-5)) }).ToList() },
            "the same instants in another offset: Condition's own equality");
    }

    [Test]
    public void RetainedConditions_WeighAFractionOfFourConditionsAndTheirArray()
    {
        const int count = 20_000;
        Running(At); // the templates and shape made once
        var kept = new IReadOnlyList<Condition>[count];
        var before = GC.GetTotalMemory(forceFullCollection: true);
        for (var i = 0; i < count; i++)
        {
            kept[i] = Running(At.AddTicks(i * 7L)); // every VM its own times, as under load
        }

        var after = GC.GetTotalMemory(forceFullCollection: true);
        var perVm = (after - before) / (double)count;
        TestContext.Out.WriteLine($"retained per running VM's conditions: {perVm:0} bytes");
        // Four Condition objects (72 bytes each) and their array (56) were 344 bytes; packed: one object of 72.
        perVm.Should().BeLessThan(100, "a running VM's four conditions keep {0:0} bytes", perVm);
        kept[count - 1].Should().Equal(
            new Condition("Admitted", ConditionStatus.True, "Admitted", "", At.AddTicks((count - 1) * 7L), 1),
            new Condition(Conditions.Paused, ConditionStatus.False, "NotPaused", "", At.AddTicks((count - 1) * 7L), 1),
            new Condition(Conditions.Ready, ConditionStatus.True, "Running", "", At.AddTicks(((count - 1) * 7L) + 1), 1),
            new Condition(Conditions.Synchronized, ConditionStatus.True, Conditions.ReasonReconciled, "", At.AddTicks(((count - 1) * 7L) + 2), 1));
        GC.KeepAlive(kept);
    }

    [Test]
    public void Set_FromManyThreadsAtOnce_EveryResultIsExactlyWhatWasSet()
    {
        // The template and shape caches are shared and unlocked: a race may only lose sharing, never mix two values up.
        string[] reasons = ["A", "B", "C", "D", "E", "F", "G", "H"];
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, thread =>
        {
            var random = new Random(thread);
            for (var round = 0; round < 20_000; round++)
            {
                var generation = random.Next(1, 50);
                var reason = reasons[random.Next(reasons.Length)];
                var message = random.Next(4) == 0 ? $"m{random.Next(1000)}" : "";
                var at = At.AddTicks(random.Next());
                var conditions = Conditions.Set([], "Admitted", ConditionStatus.True, reason, message, generation, at);
                conditions = Conditions.Set(conditions, Conditions.Ready, (ConditionStatus)random.Next(3), reason, message, generation, at);

                conditions.Should().HaveCount(2);
                conditions[0].Should().Be(new Condition("Admitted", ConditionStatus.True, reason, message, at, generation));
                conditions[1].Type.Should().Be(Conditions.Ready);
                conditions[1].Reason.Should().Be(reason);
                conditions[1].Message.Should().Be(message);
                conditions[1].ObservedGeneration.Should().Be(generation);
            }
        });
    }

    [Test]
    public void Set_UnchangedOnPacked_ReturnsTheSameObjectWithoutAllocating()
    {
        var running = Running(At);
        Conditions.Set(running, Conditions.Ready, ConditionStatus.True, "Running", "", 1, At.AddHours(1)); // warm

        var before = GC.GetAllocatedBytesForCurrentThread();
        var again = running;
        for (var i = 0; i < 100; i++)
        {
            again = Conditions.Set(again, Conditions.Ready, ConditionStatus.True, "Running", "", 1, At.AddHours(1));
            again = Conditions.Set(again, Conditions.Synchronized, ConditionStatus.True, Conditions.ReasonReconciled, "", 1, At.AddHours(1));
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
        again.Should().BeSameAs(running);
        Conditions.Set(running, Conditions.Ready, ConditionStatus.True, "Running", "", 1, At.AddHours(1))[2].LastTransitionTime
            .Should().Be(At.AddTicks(1), "the status did not flip, so the transition time is kept");
        Conditions.Set(running, Conditions.Ready, ConditionStatus.False, "Stopped", "", 1, At.AddHours(1))[2].LastTransitionTime
            .Should().Be(At.AddHours(1), "the status flipped");
    }
}

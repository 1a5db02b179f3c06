using Hypercore.MicroVms;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// What a record read from the store weighs in memory (issue 15, survive7): the informer keeps every record it lists at
/// start for the daemon's life (goal 6 lists 100,000), and the GC copies each one gen0 → gen1 → gen2. The JSON reader
/// made a new empty List or Dictionary for every <c>[]</c> and <c>{}</c> of a row; the records now keep one shared
/// empty instance, with the same contents.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class SqliteRetainedRecordTests : OpenStoreTest
{
    [Test]
    public async Task List_StoppedRecordsFromAFreshStore_KeepNoEmptyCollectionOfTheirOwn()
    {
        const int count = 2_000;
        var now = new DateTimeOffset(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);
        for (var i = 0; i < count; i++)
        {
            var vm = await Store.CreateAsync(new MicroVmSpec { Id = $"vm-{i:D5}", State = DesiredState.Stopped, Kernel = new KernelSpec { Image = "/images/vmlinuz" } });
            var conditions = Conditions.Set([], Conditions.Paused, ConditionStatus.False, "NotPaused", "", 1, now.AddTicks(i));
            conditions = Conditions.Set(conditions, Conditions.Ready, ConditionStatus.False, "Stopped", "", 1, now.AddTicks(i));
            conditions = Conditions.Set(conditions, Conditions.Synchronized, ConditionStatus.True, Conditions.ReasonReconciled, "", 1, now.AddTicks(i));
            await Store.ClaimWithStatusAsync(vm.Key, vm.Status with { Phase = Phase.Stopped, Node = "test-node", ObservedGeneration = 1, Conditions = conditions }, vm.ResourceVersion);
        }

        await Store.DisposeAsync();
        await using var fresh = Database.Open(); // nothing remembered from the writes: every row parsed
        var first = await fresh.ListAsync(); // also the first use: statements, caches, interned strings
        var before = GC.GetTotalMemory(forceFullCollection: true);
        var records = await fresh.ListAsync(); // the same rows again, both lists held
        var after = GC.GetTotalMemory(forceFullCollection: true);
        var perRecord = (after - before) / (double)count;
        first.Should().HaveCount(count);
        records.Should().HaveCount(count);
        records[7].Spec.AdditionalVolumes.Should().BeEmpty();
        records[7].Spec.Labels.Should().BeEmpty();
        records[7].Spec.Kernel.Cmdline.Should().BeEmpty();
        records[7].Status.Conditions.Select(c => c.Type).Should().Equal(Conditions.Paused, Conditions.Ready, Conditions.Synchronized);
        records[7].Status.Addresses.Should().BeEmpty();
        // Measured: 1,276-1,280 bytes before (three empty maps, five empty lists and the conditions' List), 831 after
        // survive7, 597 since s31 (the three conditions packed: one 72-byte object where three Conditions and their array
        // were 264 bytes).
        TestContext.Out.WriteLine($"retained per record: {perRecord:0} bytes");
        perRecord.Should().BeLessThan(720, "a Stopped record read from the store keeps {0:0} bytes", perRecord);
        GC.KeepAlive(records);
        GC.KeepAlive(first);
    }
}

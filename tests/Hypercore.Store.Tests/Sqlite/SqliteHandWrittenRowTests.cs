using Hypercore.MicroVms;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// A row another process wrote with only some JSON members (an operator's <c>sqlite3</c> fix, an older daemon): the
/// members left out read back as their defaults, empty collections included, never null. Before survive7's records the
/// JSON reader set a missing list to null, and the daemon's reconciler and the gRPC Watch then failed with a
/// NullReferenceException on that record (seen by tidy7 with a status column set to <c>{"phase":"Failed"}</c>).
/// </summary>
[TestFixture]
public sealed class SqliteHandWrittenRowTests : OpenStoreTest
{
    [Test]
    public async Task Get_StatusWrittenWithOnlyAPhase_ReadsBackWithEmptyCollections()
    {
        var vm = await Store.CreateAsync(new MicroVmSpec { Id = "hand", State = DesiredState.Stopped, Kernel = new KernelSpec { Image = "/images/vmlinuz" } });
        await Store.DisposeAsync();
        using (var connection = Database.OpenConnection())
        using (var command = connection.CreateCommand())
        {
            command.CommandText = """UPDATE microvms SET status = '{"phase":"Failed"}', spec = '{"id":"hand","namespace":"default","kernel":{"image":"/images/vmlinuz"}}', resource_version = resource_version + 1""";
            command.ExecuteNonQuery().Should().Be(1);
        }

        await using var fresh = Database.Open();
        var read = await fresh.GetAsync(vm.Key);

        read.Should().NotBeNull();
        read!.Status.Phase.Should().Be(Phase.Failed);
        read.Status.Conditions.Should().NotBeNull().And.BeEmpty();
        read.Status.Addresses.Should().NotBeNull().And.BeEmpty();
        read.Status.Interfaces.Should().NotBeNull().And.BeEmpty();
        read.Status.PortForwards.Should().NotBeNull().And.BeEmpty();
        read.Status.Images.Should().NotBeNull().And.BeEmpty();
        read.Spec.Labels.Should().NotBeNull().And.BeEmpty();
        read.Spec.AdditionalVolumes.Should().NotBeNull().And.BeEmpty();
        read.Spec.Interfaces.Should().NotBeNull().And.BeEmpty();
        read.Spec.Metadata.Should().NotBeNull().And.BeEmpty();
        read.Spec.Kernel.Cmdline.Should().NotBeNull().And.BeEmpty();
        // What the reconciler does first with a failed record: set a condition on what it read.
        Conditions.Set(read.Status.Conditions, Conditions.Ready, ConditionStatus.False, "Failed", "", 1, DateTimeOffset.UnixEpoch)
            .Should().ContainSingle();
    }
}

using Hypercore.MicroVms;
using Hypercore.Store.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// The writer's recent-record memory keeps two generations of keys and, since issue 15, reuses the dropped
/// generation's dictionary instead of growing a new one: what it finds must be exactly what two fresh generations held.
/// </summary>
public class RecentRecordsTests
{
    private static readonly RowText Text = new("{\"spec\":1}", "{\"status\":1}");

    [Test]
    public void Find_AfterTwoGenerationChanges_HasDroppedTheOldestAndKeptTheLastTwo()
    {
        var recent = new RecentRecords(generationSize: 3);
        Put(recent, "a", 1);
        Put(recent, "b", 2);
        Put(recent, "c", 3);
        Put(recent, "d", 4); // a, b, c move to the previous generation
        Put(recent, "e", 5);
        Put(recent, "f", 6);
        Put(recent, "g", 7); // a, b, c dropped; d, e, f previous

        foreach (var dropped in (string[])["a", "b", "c"])
        {
            recent.Find(Key(dropped), 0, Text).Should().BeNull(dropped);
        }

        Find(recent, "d", 4).Should().NotBeNull();
        Find(recent, "f", 6).Should().NotBeNull();
        Find(recent, "g", 7).Should().NotBeNull();
    }

    [Test]
    public void Put_ManyGenerations_FindsExactlyTheKeysOfTheLastTwo()
    {
        const int size = 16;
        var recent = new RecentRecords(size);
        var reference = new List<Dictionary<string, long>> { new(), new() }; // [previous, current], as fresh dictionaries would be
        var random = new Random(15);
        for (var i = 0; i < 5_000; i++)
        {
            var id = $"vm-{random.Next(60)}";
            var version = (long)i + 1;
            Put(recent, id, version);
            var current = reference[1];
            if (current.Count >= size && !current.ContainsKey(id))
            {
                reference[0] = current;
                reference[1] = current = new Dictionary<string, long>();
            }

            current[id] = version;

            for (var k = 0; k < 60; k++)
            {
                var probe = $"vm-{k}";
                long? expected = reference[1].TryGetValue(probe, out var v1) ? v1 : reference[0].TryGetValue(probe, out var v0) ? v0 : null;
                var found = expected is { } v ? Find(recent, probe, v) : recent.Find(Key(probe), version, Text);
                (found is not null).Should().Be(expected is not null, $"step {i}, key {probe}");
            }
        }
    }

    [Test]
    public void Find_OtherVersionOrText_ReturnsNull()
    {
        var recent = new RecentRecords(4);
        Put(recent, "a", 5);

        recent.Find(Key("a"), 6, Text).Should().BeNull();
        recent.Find(Key("a"), 5, Text with { StatusJson = "{\"status\":2}" }).Should().BeNull();
        recent.Find(Key("a"), 5, Text with { SpecJson = "{\"spec\":2}" }).Should().BeNull();
        recent.Find(Key("a"), 5, Text with { StatusJson = Text.StatusJson + " " }).Should().BeNull();
        recent.Find(Key("a"), 5, new RowText(new string(Text.SpecJson), new string(Text.StatusJson))).Should().NotBeNull("equal text in other string instances, as read back from the file");
        Find(recent, "a", 5)!.ResourceVersion.Should().Be("5");
    }

    private static VmKey Key(string id) => new("default", id);

    private static MicroVm? Find(RecentRecords recent, string id, long version) => recent.Find(Key(id), version, Text);

    private static void Put(RecentRecords recent, string id, long version) =>
        recent.Put(version, new MicroVm
        {
            Uid = "uid-" + id,
            Spec = new MicroVmSpec { Id = id, Namespace = "default", Kernel = new KernelSpec { Image = "/images/vmlinuz" } },
            ResourceVersion = version.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }, Text);
}

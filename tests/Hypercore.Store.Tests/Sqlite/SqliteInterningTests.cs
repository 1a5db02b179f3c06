using System.Text;
using System.Text.Json;
using Hypercore.MicroVms;
using Hypercore.Store.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>Issue 15: values repeated in every row are one string in memory once read, not one per record.</summary>
[TestFixture]
public sealed class SqliteInterningTests : OpenStoreTest
{
    [Test]
    public async Task List_RepeatedValues_AreSharedStrings_UniqueValuesAndContentUnchanged()
    {
        for (var i = 0; i < 3; i++)
        {
            var vm = await Store.CreateAsync(new MicroVmSpec
            {
                Id = $"vm-{i}", Namespace = "team-a", Kernel = new KernelSpec { Image = "/images/vmlinuz" },
                Labels = new Dictionary<string, string> { ["app"] = "web", ["escaped"] = "a\"b\\c\u00e9" },
            });
            await Store.UpdateStatusAsync(vm.Key, vm.Status with { Phase = Phase.Running, Node = "node-1", Runtime = "qemu 7.2" }, vm.ResourceVersion);
        }

        // Each row is parsed separately: without interning every record would hold its own copies.
        var list = await Store.ListAsync();

        list.Should().HaveCount(3);
        list.Select(v => v.Spec.Id).Should().Equal("vm-0", "vm-1", "vm-2");
        list.Should().OnlyContain(v => v.Spec.Namespace == "team-a" && v.Spec.Kernel.Image == "/images/vmlinuz" &&
            v.Spec.Labels["app"] == "web" && v.Spec.Labels["escaped"] == "a\"b\\c\u00e9" &&
            v.Status.Node == "node-1" && v.Status.Runtime == "qemu 7.2");
        ReferenceEquals(list[0].Spec.Namespace, list[2].Spec.Namespace).Should().BeTrue();
        ReferenceEquals(list[0].Spec.Kernel.Image, list[1].Spec.Kernel.Image).Should().BeTrue();
        ReferenceEquals(list[0].Status.Node, list[2].Status.Node).Should().BeTrue();
        ReferenceEquals(list[0].Spec.Labels["app"], list[1].Spec.Labels["app"]).Should().BeTrue();
        ReferenceEquals(list[0].Spec.Labels.Keys.First(k => k == "escaped"), list[2].Spec.Labels.Keys.First(k => k == "escaped")).Should().BeTrue("label keys are read through the same cache");
        (await Store.GetAsync(list[1].Key)).Should().BeEquivalentTo(list[1]);
    }

    [Test]
    public void Read_RepeatedValue_StaysSharedWhileUniqueValuesAreReadInBetween()
    {
        // Rows interleave repeated values with unique ones (ids, uids). With one slot per hash about one unique value in
        // 4,096 pushed a repeated value out, so 1,000 rounds of 40 unique values lost sharing in almost every run (4 of 4).
        // A repeated value is now pushed out only by four unique values of its own set in between (~1 run in 10^4).
        var converter = new InterningStringConverter();
        for (var round = 0; round < 1000; round++)
        {
            var repeated = $"team-{round}";
            var first = ReadThrough(converter, repeated);
            for (var i = 0; i < 40; i++)
            {
                ReadThrough(converter, Guid.NewGuid().ToString("N"));
            }

            var again = ReadThrough(converter, repeated);

            again.Should().Be(repeated);
            ReferenceEquals(first, again).Should().BeTrue($"'{repeated}' was read again after 40 unique values (round {round})");
        }
    }

    private static string ReadThrough(InterningStringConverter converter, string value)
    {
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(value)));
        reader.Read();
        return converter.Read(ref reader, typeof(string), JsonSerializerOptions.Default)!;
    }

    [Test]
    public async Task Get_LongValue_ReadsBackExactly()
    {
        var longImage = "/images/" + new string('k', 300);
        var vm = await Store.CreateAsync(new MicroVmSpec { Id = "long", Kernel = new KernelSpec { Image = longImage } });

        (await Store.GetAsync(vm.Key))!.Spec.Kernel.Image.Should().Be(longImage);
    }
}

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
    public async Task Get_LongValue_ReadsBackExactly()
    {
        var longImage = "/images/" + new string('k', 300);
        var vm = await Store.CreateAsync(new MicroVmSpec { Id = "long", Kernel = new KernelSpec { Image = longImage } });

        (await Store.GetAsync(vm.Key))!.Spec.Kernel.Image.Should().Be(longImage);
    }
}

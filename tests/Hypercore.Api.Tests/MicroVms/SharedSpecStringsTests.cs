using FluentAssertions;
using Google.Protobuf;
using Hypercore.Api.MicroVms;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Api.Tests.MicroVms;

/// <summary>
/// Issue 15 goal 2 (survivors): the strings nearly every spec repeats are kept once, not once per record; what a
/// caller sees of a spec (its values, its equality) is unchanged, and the pool stays bounded.
/// </summary>
public sealed class SharedSpecStringsTests
{
    private static MicroVMSpec Wire(string id, string kernel = "/var/lib/hypercore/images/vmlinuz-6.1") => new()
    {
        Id = id,
        Namespace = "team-a",
        Vcpu = 1,
        MemoryInMb = 128,
        Kernel = new Kernel { Image = kernel, Filename = "boot/vmlinux" },
        Initrd = new Initrd { Image = "/var/lib/hypercore/images/initrd.img", Filename = "boot/initrd" },
        Provider = "qemu",
        NodeName = "node-1",
    };

    [Test]
    public void ToCore_TwoRequests_ShareTheRepeatedStringsAndKeepTheirValues()
    {
        // Each parse makes its own strings, as the gRPC request parser does.
        var first = Mapping.ToCore(MicroVMSpec.Parser.ParseFrom(Wire("a").ToByteArray()), new List<string>());
        var second = Mapping.ToCore(MicroVMSpec.Parser.ParseFrom(Wire("b").ToByteArray()), new List<string>());

        second.Namespace.Should().Be("team-a").And.BeSameAs(first.Namespace);
        second.Kernel.Image.Should().Be("/var/lib/hypercore/images/vmlinuz-6.1").And.BeSameAs(first.Kernel.Image);
        second.Kernel.Filename.Should().Be("boot/vmlinux").And.BeSameAs(first.Kernel.Filename);
        second.Initrd!.Image.Should().Be("/var/lib/hypercore/images/initrd.img").And.BeSameAs(first.Initrd!.Image);
        second.Initrd.Filename.Should().Be("boot/initrd").And.BeSameAs(first.Initrd.Filename);
        second.Provider.Should().Be("qemu").And.BeSameAs(first.Provider);
        second.NodeName.Should().Be("node-1").And.BeSameAs(first.NodeName);
        second.Id.Should().Be("b");
        (first with { Id = "b" }).Should().Be(second, "sharing changes no value");
    }

    [Test]
    public void Share_FourStringsOfOneHashBucket_AreAllKept()
    {
        // Found at run time (string hashes are seeded per process): four strings whose hashes agree in the low 8 bits,
        // i.e. the same slot of a 256-slot direct-mapped pool, which kept only the last (a spec's kernel path could push
        // out its own namespace: SharedSpecStringsTests failed CI once that way).
        var bucket = new List<string>();
        for (var i = 0; bucket.Count < 4; i++)
        {
            var candidate = $"/var/lib/hypercore/images/collide-{i}";
            if ((string.GetHashCode(candidate.AsSpan(), StringComparison.Ordinal) & 255) == 0)
            {
                bucket.Add(candidate);
            }
        }

        var kept = bucket.Select(s => SharedSpecStrings.Share(new string(s.AsSpan()))).ToList();

        for (var i = 0; i < bucket.Count; i++)
        {
            SharedSpecStrings.Share(new string(bucket[i].AsSpan())).Should().BeSameAs(kept[i], $"{bucket[i]} was shared a moment ago");
        }
    }

    [Test]
    public void ToCore_UnsetOptionalStrings_StayNullOrEmpty()
    {
        var core = Mapping.ToCore(new MicroVMSpec { Id = "a", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/k" } }, new List<string>());

        core.Kernel.Filename.Should().BeNull();
        core.Initrd.Should().BeNull();
        core.Provider.Should().BeEmpty();
        core.NodeName.Should().BeEmpty();
        core.Namespace.Should().BeEmpty("the operations layer puts the default namespace in");
    }

    [Test]
    public void Share_DifferentText_ReturnsItsOwnText()
    {
        var a = SharedSpecStrings.Share(new string('a', 3));
        var b = SharedSpecStrings.Share(new string('b', 3));

        a.Should().Be("aaa");
        b.Should().Be("bbb");
        SharedSpecStrings.Share(new string('a', 3)).Should().BeSameAs(a);
        SharedSpecStrings.Share(new string('x', 0)).Should().BeSameAs(string.Empty);
    }

    [Test]
    public void Share_AFloodOfDistinctValues_EveryAnswerEqualsItsInput()
    {
        // The pool has a fixed number of slots: distinct values only replace each other; an answer is never another text.
        for (var i = 0; i < 20_000; i++)
        {
            var value = $"/images/kernel-{i}";
            SharedSpecStrings.Share(value).Should().Be(value);
        }

        var long1 = new string('k', 600);
        SharedSpecStrings.Share(long1).Should().BeSameAs(long1, "long strings are not pooled");
        SharedSpecStrings.Share(new string('k', 600)).Should().NotBeSameAs(long1);
    }

    [Test]
    public async Task Share_FromManyThreads_AlwaysAnswersEqualText()
    {
        var values = Enumerable.Range(0, 600).Select(i => $"ns-{i % 300}").ToArray();
        var wrong = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            for (var round = 0; round < 200; round++)
            {
                foreach (var value in values)
                {
                    var copy = new string(value.AsSpan());
                    if (SharedSpecStrings.Share(copy) != value)
                    {
                        Interlocked.Increment(ref wrong);
                    }
                }
            }
        })));

        wrong.Should().Be(0);
    }
}

using System.Collections.ObjectModel;
using Hypercore.MicroVms;

namespace Hypercore.Core.Tests.MicroVms;

/// <summary>
/// Issue 15, gc10: specs with equal kernels hold one <see cref="KernelSpec"/> (Compact.Kernel), not one each: every
/// record keeps its spec for the VM's life, and the GC copied a kernel object per record with it.
/// </summary>
[TestFixture]
[NonParallelizable] // the remembered kernels are process-wide
public sealed class SharedKernelTests
{
    [Test]
    public void SpecsWithEqualKernels_HoldOneKernelObject()
    {
        var image = $"/images/{Guid.NewGuid():N}/vmlinuz";
        var a = Spec("a", new KernelSpec { Image = image });
        var b = Spec("b", new KernelSpec { Image = new string(image.AsSpan()) }); // equal, made separately (as each Create's is)

        b.Kernel.Should().BeSameAs(a.Kernel);
        b.Kernel.Image.Should().Be(image);
    }

    [Test]
    public void DifferentKernels_StayDifferent_AndEqualityIsUnchanged()
    {
        var image = $"/images/{Guid.NewGuid():N}/vmlinuz";
        var plain = Spec("a", new KernelSpec { Image = image });
        var withFile = Spec("b", new KernelSpec { Image = image, Filename = "bzImage" });
        var withNet = Spec("c", new KernelSpec { Image = image, AddNetworkConfig = true });
        var withArgs = Spec("d", new KernelSpec { Image = image, Cmdline = new Dictionary<string, string> { ["console"] = "ttyS0" } });

        new[] { plain.Kernel, withFile.Kernel, withNet.Kernel, withArgs.Kernel }.Distinct().Should().HaveCount(4);
        withFile.Kernel.Filename.Should().Be("bzImage");
        withNet.Kernel.AddNetworkConfig.Should().BeTrue();
        withArgs.Kernel.Cmdline.Should().Equal(new Dictionary<string, string> { ["console"] = "ttyS0" });
        plain.Should().NotBe(withArgs);
        plain.Should().Be(Spec("a", new KernelSpec { Image = image }));
    }

    [Test]
    public void ASharedKernelsCommandLine_CannotBeChangedThroughTheMapItWasGiven()
    {
        var image = $"/images/{Guid.NewGuid():N}/vmlinuz";
        var args = new Dictionary<string, string> { ["console"] = "ttyS0" };
        var a = Spec("a", new KernelSpec { Image = image, Cmdline = args });
        var b = Spec("b", new KernelSpec { Image = image, Cmdline = new Dictionary<string, string> { ["console"] = "ttyS0" } });

        b.Kernel.Should().BeSameAs(a.Kernel);
        args["root"] = "/dev/vda"; // the caller's own map: no spec holds it
        b.Kernel.Cmdline.Should().Equal(new Dictionary<string, string> { ["console"] = "ttyS0" });
        b.Kernel.Cmdline.Should().BeOfType<ReadOnlyDictionary<string, string>>();
    }

    [Test]
    public void With_KeepsTheSharedKernel()
    {
        var image = $"/images/{Guid.NewGuid():N}/vmlinuz";
        var a = Spec("a", new KernelSpec { Image = image });
        var copy = a with { MemoryInMb = 256 };

        copy.Kernel.Should().BeSameAs(a.Kernel);
    }

    [Test]
    public void ASpecGivenAKernelEqualToARecentOne_AllocatesOnlyItself()
    {
        // The comparison with the recent kernels is on every spec made (each Create's, each row read): it must not cost
        // what it saves. 1,000 specs given equal kernels made beforehand allocate the specs and nothing else.
        var image = $"/images/{Guid.NewGuid():N}/vmlinuz";
        var kernels = Enumerable.Range(0, 1_000).Select(_ => new KernelSpec { Image = new string(image.AsSpan()) }).ToArray();
        var specs = new MicroVmSpec[kernels.Length];
        specs[0] = Spec("warm-up", kernels[0]);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < kernels.Length; i++)
        {
            specs[i] = new MicroVmSpec { Id = "vm", Kernel = kernels[i] };
        }

        var perSpec = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)kernels.Length;
        perSpec.Should().BeLessThanOrEqualTo(200, "a MicroVmSpec is ~160 bytes; {0:0} were allocated per spec", perSpec);
        specs.Select(s => s.Kernel).Distinct(ReferenceEqualityComparer.Instance).Should().ContainSingle();
    }

    private static MicroVmSpec Spec(string id, KernelSpec kernel) => new() { Id = id, Kernel = kernel };
}

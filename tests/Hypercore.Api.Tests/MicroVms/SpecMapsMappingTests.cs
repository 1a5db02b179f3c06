using FluentAssertions;
using Hypercore.Api.MicroVms;
using Hypercore.Contracts.VmApi;
using Hypercore.MicroVms;

namespace Hypercore.Api.Tests.MicroVms;

/// <summary>
/// Issue 15 goal 2 (creates3): a request's empty labels, metadata and kernel command line map to one shared empty
/// map instead of a new dictionary each; what a caller sees of the spec is the same.
/// </summary>
public sealed class SpecMapsMappingTests
{
    private static MicroVMSpec Wire() => new() { Id = "web", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" } };

    [Test]
    public void ToCore_EmptyMaps_EmptyAndEqualToASpecWithItsOwnEmptyDictionaries()
    {
        var errors = new List<string>();
        var core = Mapping.ToCore(Wire(), errors);

        errors.Should().BeEmpty();
        core.Labels.Should().BeEmpty();
        core.Metadata.Should().BeEmpty();
        core.Kernel.Cmdline.Should().BeEmpty();
        core.AdditionalVolumes.Should().BeEmpty();
        core.Interfaces.Should().BeEmpty();
        var separate = core with
        {
            Labels = new Dictionary<string, string>(),
            Metadata = new Dictionary<string, string>(),
            Kernel = core.Kernel with { Cmdline = new Dictionary<string, string>() },
        };
        core.Equals(separate).Should().BeTrue("an update with the same (empty) maps must not bump the generation");
        Mapping.ToCore(Wire(), errors).Labels.Should().BeSameAs(core.Labels, "empty maps are one shared instance");
    }

    [Test]
    public void ToCore_EmptyMaps_CannotBeWrittenThroughACast()
    {
        var core = Mapping.ToCore(Wire(), new List<string>());

        // The shared instance must not be a mutable dictionary that one spec's holder could fill for every other spec.
        var shared = core.Labels.Should().BeAssignableTo<IDictionary<string, string>>().Subject;
        shared.IsReadOnly.Should().BeTrue();
        shared.Invoking(d => d.Add("team", "a")).Should().Throw<NotSupportedException>();
        Mapping.ToCore(Wire(), new List<string>()).Labels.Should().BeEmpty();
    }

    [Test]
    public void ToCore_FilledMaps_CopiedSoLaterChangesToTheRequestDoNotReachTheSpec()
    {
        var wire = Wire();
        wire.Labels["team"] = "a";
        wire.Metadata["user-data"] = "#cloud-config";
        wire.Kernel.Cmdline["console"] = "ttyS0";

        var core = Mapping.ToCore(wire, new List<string>());
        wire.Labels["team"] = "b";
        wire.Metadata.Clear();
        wire.Kernel.Cmdline["console"] = "hvc0";

        core.Labels.Should().Equal(new Dictionary<string, string> { ["team"] = "a" });
        core.Metadata.Should().Equal(new Dictionary<string, string> { ["user-data"] = "#cloud-config" });
        core.Kernel.Cmdline.Should().Equal(new Dictionary<string, string> { ["console"] = "ttyS0" });
    }
}

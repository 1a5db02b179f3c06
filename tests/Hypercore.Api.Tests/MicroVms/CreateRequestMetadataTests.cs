using FluentAssertions;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Google.Protobuf.WellKnownTypes;
using Hypercore.Api.MicroVms;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Api.Tests.MicroVms;

/// <summary>
/// Issue 15 goal 2 (survivors): a Create without guest metadata keeps the one shared empty map (the request's metadata
/// merge made a new dictionary per record, undoing Mapping's sharing); with metadata, the merge is as before.
/// </summary>
public sealed class CreateRequestMetadataTests
{
    private static MicroVMSpec Wire() => new() { Id = "web", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" } };

    [TestCase(false)]
    [TestCase(true)]
    public void Read_NoMetadataAnywhere_SharedReadOnlyEmptyMap(bool base64)
    {
        var (first, errors) = CreateRequest.Read(Wire(), new MapField<string, Any>(), base64);
        var (second, _) = CreateRequest.Read(Wire(), new MapField<string, Any>(), base64);

        errors.Should().BeEmpty();
        first.Metadata.Should().BeEmpty();
        second.Metadata.Should().BeSameAs(first.Metadata);
        var shared = first.Metadata.Should().BeAssignableTo<IDictionary<string, string>>().Subject;
        shared.IsReadOnly.Should().BeTrue("one spec's holder must not be able to fill every other spec's map");
        (first with { Metadata = new Dictionary<string, string>() }).Should().Be(first, "an empty map equals any other empty map");
    }

    [Test]
    public void Read_MetadataInTheRequestAndTheSpec_MergedWithTheSpecWinning()
    {
        var wire = Wire();
        wire.Metadata["user-data"] = "spec";
        wire.Metadata["meta-data"] = "only-spec";
        var request = new MapField<string, Any>
        {
            ["user-data"] = Any.Pack(new StringValue { Value = "request" }),
            ["vendor-data"] = Any.Pack(new StringValue { Value = "only-request" }),
        };

        var (spec, errors) = CreateRequest.Read(wire, request, base64Metadata: false);

        errors.Should().BeEmpty();
        spec.Metadata.Should().Equal(new Dictionary<string, string>
        {
            ["user-data"] = "spec",
            ["meta-data"] = "only-spec",
            ["vendor-data"] = "only-request",
        });
    }

    [Test]
    public void Read_MetadataOnlyInTheRequest_ItsOwnMap()
    {
        var request = new MapField<string, Any> { ["user-data"] = Any.Pack(new StringValue { Value = "#cloud-config" }) };

        var (spec, _) = CreateRequest.Read(Wire(), request, base64Metadata: false);
        var (plain, _) = CreateRequest.Read(Wire(), new MapField<string, Any>(), base64Metadata: false);

        spec.Metadata.Should().Equal(new Dictionary<string, string> { ["user-data"] = "#cloud-config" });
        plain.Metadata.Should().BeEmpty("the shared empty map was not written by the other request");
    }
}

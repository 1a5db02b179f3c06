using System.Text;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Hypercore.Api.Tests.Hosting;
using Hypercore.MicroVms;
using Hypercore.Api.Tests.Wire.Seed;

namespace Hypercore.Api.Tests.Wire;

/// <summary>
/// A client generated from the seed's vm.services.api proto (the test's own copy): uid in field 1 of Get/Delete,
/// ListVMsStream, Any metadata, flintlock's numbers in the types.
/// </summary>
public sealed class SeedClientWireTests
{
    private ApiTestServer _server = null!;
    private VMService.VMServiceClient _seed = null!;

    [SetUp]
    public async Task SetUp()
    {
        _server = await WireServer.StartAsync();
        _seed = _server.SeedClient();
    }

    [TearDown]
    public async Task TearDown() => await _server.DisposeAsync();

    private static CreateMicroVMRequest Request(string id, string? provider = null)
    {
        var spec = new MicroVMSpec { Id = id, Namespace = "seed", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/var/lib/hypercore/vmlinuz" } };
        if (provider is not null)
        {
            spec.Provider = provider;
        }

        return new CreateMicroVMRequest { Microvm = spec };
    }

    [Test]
    public async Task GetAndDelete_ByUidInFieldOne_FindTheCreatedVm()
    {
        var created = (await _seed.CreateAsync(Request("web1"))).Microvm;
        created.Spec.Uid.Should().NotBeEmpty();

        var got = (await _seed.GetAsync(new GetMicroVMRequest { Uid = created.Spec.Uid })).Microvm;
        got.Spec.Id.Should().Be("web1");
        got.Spec.Namespace.Should().Be("seed");
        got.Status.State.Should().Be(MicroVMStatus.Types.MicroVMState.Pending);

        await _seed.DeleteAsync(new DeleteMicroVMRequest { Uid = created.Spec.Uid });
        var stored = await _server.Store.Inner.GetByUidAsync(created.Spec.Uid);
        stored!.IsDeleting.Should().BeTrue();
        (await _seed.GetAsync(new GetMicroVMRequest { Uid = created.Spec.Uid })).Microvm.Status.State
            .Should().Be(MicroVMStatus.Types.MicroVMState.Deleting);
    }

    [Test]
    public async Task Create_RootPartitionIdAndNameservers_GetReturnsWhatWasSent()
    {
        var request = Request("parts1");
        request.Microvm.Kernel.AddNetworkConfig = true;
        request.Microvm.RootVolume = new Volume { Id = "root", PartitionId = "ABCDEF01-0002", SizeInMb = 32 };
        request.Microvm.Interfaces.Add(new NetworkInterface
        {
            DeviceId = "eth0",
            Type = NetworkInterface.Types.IfaceType.Tap,
            Address = new StaticAddress { Address = "10.78.0.2/24", Gateway = "10.78.0.1", Nameservers = { "10.78.0.53" } },
        });

        var created = (await _seed.CreateAsync(request)).Microvm;
        var got = (await _seed.GetAsync(new GetMicroVMRequest { Uid = created.Spec.Uid })).Microvm;

        got.Spec.RootVolume.PartitionId.Should().Be("ABCDEF01-0002");
        got.Spec.Interfaces.Should().ContainSingle().Which.Address.Nameservers.Should().Equal("10.78.0.53");
    }

    [Test]
    public async Task Get_UnknownUid_ReturnsNotFoundSayingNotFound()
    {
        var ex = (await _seed.Invoking(c => c.GetAsync(new GetMicroVMRequest { Uid = "no-such-uid" }).ResponseAsync)
            .Should().ThrowAsync<RpcException>()).Which;
        ex.StatusCode.Should().Be(StatusCode.NotFound);
        ex.Status.Detail.Should().Contain("not found").And.Contain("no-such-uid");
    }

    [Test]
    public async Task ListVMsStream_SendsOneMessagePerVmThenEnds()
    {
        foreach (var id in new[] { "a1", "a2", "a3" })
        {
            await _seed.CreateAsync(Request(id));
        }

        var other = Request("b1");
        other.Microvm.Namespace = "other";
        await _seed.CreateAsync(other);

        using var call = _seed.ListVMsStream(new ListMicroVMsRequest { Namespace = "seed" });
        var ids = new List<string>();
        await foreach (var message in call.ResponseStream.ReadAllAsync())
        {
            ids.Add(message.Microvm.Spec.Id);
        }

        ids.Should().BeEquivalentTo(["a1", "a2", "a3"], "the stream is the namespace's current list and then ends");
        (await _seed.ListAsync(new ListMicroVMsRequest { Namespace = "seed", Name = "a2" })).Microvm.Select(m => m.Spec.Id).Should().Equal("a2");
    }

    [Test]
    public async Task Create_AnyMetadata_StoresStringAndBytesValuesAsText()
    {
        var request = Request("meta1", WireServer.MetadataProvider);
        request.Metadata["user-data"] = Any.Pack(new StringValue { Value = "#cloud-config\nhostname: meta1\n" });
        request.Metadata["vendor-data"] = Any.Pack(new BytesValue { Value = ByteString.CopyFromUtf8("vendor bytes") });
        request.Microvm.Metadata["meta-data"] = "instance-id: meta1";

        var created = (await _seed.CreateAsync(request)).Microvm;

        var stored = (await _server.Store.Inner.GetByUidAsync(created.Spec.Uid))!;
        stored.Spec.Metadata.Should().BeEquivalentTo(new Dictionary<string, string>
        {
            ["user-data"] = "#cloud-config\nhostname: meta1\n",
            ["vendor-data"] = "vendor bytes",
            ["meta-data"] = "instance-id: meta1",
        });
        created.Spec.Metadata["vendor-data"].Should().Be("vendor bytes");
    }

    [Test]
    public async Task Create_AnyMetadataOfAnotherType_ReturnsInvalidArgumentNamingTheKeyAndWritesNothing()
    {
        var request = Request("meta2", WireServer.MetadataProvider);
        request.Metadata["user-data"] = Any.Pack(new StringValue { Value = "fine" });
        request.Metadata["answer"] = Any.Pack(new Int32Value { Value = 42 });

        var ex = (await _seed.Invoking(c => c.CreateAsync(request).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should().Contain("metadata[\"answer\"]").And.Contain("google.protobuf.Int32Value");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Create_MetadataOnProviderWithoutMetadataService_ReturnsFailedPreconditionAndWritesNothing()
    {
        var request = Request("meta3", "qemu");
        request.Metadata["user-data"] = Any.Pack(new StringValue { Value = "#cloud-config\n" });

        var ex = (await _seed.Invoking(c => c.CreateAsync(request).ResponseAsync).Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        ex.Status.Detail.Should().Contain("provider \"qemu\" has no metadata service").And.Contain("user-data").And.Contain(WireServer.MetadataProvider);
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task Get_ReplyWithConditionsAndHypercoreFields_DecodesAsTheSeedsMicroVm()
    {
        var created = (await _seed.CreateAsync(Request("cond1"))).Microvm;
        await _server.SetPhaseAsync(created.Spec.Uid, Phase.Running);

        var got = (await _seed.GetAsync(new GetMicroVMRequest { Uid = created.Spec.Uid })).Microvm;

        got.Status.State.Should().Be(MicroVMStatus.Types.MicroVMState.Created);
        got.Status.KernelMount.Type.Should().Be(Mount.Types.MountType.Hostpath);
        got.Status.KernelMount.Source.Should().Be("/var/lib/hypercore/vmlinuz");
        got.Spec.Kernel.Image.Should().Be("/var/lib/hypercore/vmlinuz");

        // Hypercore's own fields (100+) arrive as unknown fields the seed's client keeps and skips.
        var unknown = UnknownFieldNumbers(got.Status.ToByteString());
        unknown.Should().Contain([100, 101], "phase and conditions are Hypercore's, numbered 100 and up");
        unknown.Should().OnlyContain(n => n >= 7, "every flintlock number 1-6 decoded as a known field");
    }

    [Test]
    public async Task Get_HandBuiltRequestBytesWithUidInFieldOne_AnswersWithTheVmsBytes()
    {
        var created = (await _seed.CreateAsync(Request("bytes1"))).Microvm;
        var uid = Encoding.UTF8.GetBytes(created.Spec.Uid);

        // GetMicroVMRequest{ string uid = 1 }: tag 0x0A (field 1, length-delimited), length, the bytes. No schema.
        byte[] request = [0x0A, (byte)uid.Length, .. uid];
        var marshaller = Marshallers.Create(b => b, b => b);
        var method = new Method<byte[], byte[]>(MethodType.Unary, "vm.services.api.VMService", "Get", marshaller, marshaller);
        var reply = await _server.Channel.CreateCallInvoker().AsyncUnaryCall(method, null, new CallOptions(), request);

        // GetMicroVMResponse.microvm (1) → MicroVM.spec (2) → MicroVMSpec.id (1) and uid (15).
        var spec = Field(Field(reply, 1), 2);
        Encoding.UTF8.GetString(Field(spec, 1)).Should().Be("bytes1");
        Encoding.UTF8.GetString(Field(spec, 15)).Should().Be(created.Spec.Uid);
    }

    /// <summary>The first length-delimited field with that number.</summary>
    private static byte[] Field(byte[] message, int number)
    {
        var input = new CodedInputStream(message);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == number && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
            {
                return input.ReadBytes().ToByteArray();
            }

            input.SkipLastField();
        }

        throw new AssertionException($"field {number} is not in the message");
    }

    /// <summary>Field numbers present in the bytes that the seed's MicroVMStatus does not declare.</summary>
    internal static List<int> UnknownFieldNumbers(ByteString bytes)
    {
        var numbers = new List<int>();
        var input = bytes.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            var number = WireFormat.GetTagFieldNumber(tag);
            if (MicroVMStatus.Descriptor.FindFieldByNumber(number) is null)
            {
                numbers.Add(number);
            }

            input.SkipLastField();
        }

        return numbers;
    }
}

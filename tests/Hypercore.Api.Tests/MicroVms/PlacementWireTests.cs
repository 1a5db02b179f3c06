using System.Net;
using System.Text;
using Grpc.Core;
using Hypercore.Api.MicroVms;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Contracts.VmApi;
using Hypercore.MicroVms;
using Condition = Hypercore.MicroVms.Condition;

namespace Hypercore.Api.Tests.MicroVms;

/// <summary>
/// Kubernetes (issue 13): placement fields (spec 110) and the placement status (140-141) on the wire. Checked before
/// anything is stored; a standalone daemon (this server runs the SQLite store) refuses placement, which only
/// kube-scheduler can act on.
/// </summary>
public sealed class PlacementWireTests
{
    private ApiTestServer _server = null!;

    [SetUp]
    public async Task SetUp() => _server = await ApiTestServer.StartAsync();

    [TearDown]
    public async Task TearDown() => await _server.DisposeAsync();

    private static MicroVMSpec Spec(Action<Placement> placement)
    {
        var spec = new MicroVMSpec { Id = "web", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" }, Placement = new Placement() };
        placement(spec.Placement);
        return spec;
    }

    [Test]
    public async Task CreateOverGrpc_BadPlacement_InvalidArgumentNamingEveryFieldAndNothingStored()
    {
        var spec = Spec(p =>
        {
            p.NodeSelector["bad key!"] = "a";
            p.NodeSelector["zone"] = "-x";
            p.Tolerations.Add(new Toleration { Key = "dedicated", Operator = "Maybe", Effect = "NoSchedule" });
            p.Tolerations.Add(new Toleration { Key = "gpu", Operator = "Exists", Value = "yes", Effect = "Sometimes" });
            p.AffinityJson = """{"nodeAffinity":{},"zoneAffinity":{}}""";
            p.PriorityClassName = "High_Priority";
        });
        spec.NodeName = "node-1";

        var ex = (await FluentActions.Awaiting(async () => await _server.Vms.CreateAsync(new CreateMicroVMRequest { Microvm = spec }))
            .Should().ThrowAsync<RpcException>()).Which;

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
        ex.Status.Detail.Should()
            .Contain("placement is for a MicroVM without node_name")
            .And.Contain("placement.node_selector: \"bad key!\" is not a valid label key")
            .And.Contain("placement.node_selector[zone]: \"-x\" is not a valid label value")
            .And.Contain("placement.tolerations[0].operator: \"Maybe\" is not one of Equal, Exists")
            .And.Contain("placement.tolerations[1].effect: \"Sometimes\"")
            .And.Contain("placement.tolerations[1]: operator Exists takes no value")
            .And.Contain("placement.affinity_json: unknown field(s) zoneAffinity")
            .And.Contain("placement.priority_class_name: \"High_Priority\" is not a valid name");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task CreateOverHttpJson_PlacementOnAStandaloneDaemon_InvalidArgumentSayingItNeedsTheKubernetesStore()
    {
        const string body = """
            {"microvm":{"id":"web","vcpu":1,"memoryInMb":128,"kernel":{"image":"/boot/vmlinuz"},
              "placement":{"nodeSelector":{"zone":"a"},"tolerations":[{"key":"dedicated","operator":"Equal","value":"vms","effect":"NoSchedule"}],
                           "priorityClassName":"vm-high"}}}
            """;

        using var response = await _server.Http.PostAsync("/v1/microvms", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest, text);
        text.Should().Contain("placement: this daemon uses the sqlite store").And.Contain("placement needs --store kubernetes");
        text.Should().NotContain("node_selector", "the placement itself is well formed");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public void Mapping_Placement_RoundTripsBetweenWireAndCore()
    {
        var wire = Spec(p =>
        {
            p.NodeSelector["zone"] = "a";
            p.Tolerations.Add(new Toleration { Key = "dedicated", Operator = "Equal", Value = "vms", Effect = "NoExecute", TolerationSeconds = 30 });
            p.AffinityJson = """{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[]}}}""";
            p.PriorityClassName = "vm-high";
        });
        var errors = new List<string>();

        var core = Mapping.ToCore(wire, errors);

        errors.Should().BeEmpty();
        core.Placement.Should().Be(new PlacementSpec
        {
            NodeSelector = new Dictionary<string, string> { ["zone"] = "a" },
            Tolerations = [new TolerationSpec { Key = "dedicated", Operator = "Equal", Value = "vms", Effect = "NoExecute", TolerationSeconds = 30 }],
            AffinityJson = """{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[]}}}""",
            PriorityClassName = "vm-high",
        });
        PlacementValidator.Validate(core).Should().BeEmpty();
        Mapping.ToProto(core).Placement.Should().Be(wire.Placement);
        Mapping.ToCore(Spec(_ => { }), errors).Placement.Should().Be(new PlacementSpec(), "an empty placement still asks for kube-scheduler");
    }

    [Test]
    public void StatusToProto_ScheduledNodeAndNodeLost_FromTheirConditions()
    {
        var at = DateTimeOffset.UnixEpoch;
        var placed = new MicroVmSpec { Id = "web", Kernel = new KernelSpec { Image = "/k" }, NodeName = "node-2" };
        var status = MicroVmStatus.Initial with
        {
            Conditions =
            [
                new Condition("NodeLost", ConditionStatus.True, "NodeNotReady", "node-2 is NotReady", at, 1),
                new Condition("Scheduled", ConditionStatus.True, "Scheduled", "bound to node-2", at, 1),
            ],
        };

        var proto = Mapping.ToProto(status, deleting: false, placed);

        proto.ScheduledNode.Should().Be("node-2");
        proto.NodeLost.Should().BeTrue();
        var unplaced = Mapping.ToProto(MicroVmStatus.Initial, deleting: false, placed with { NodeName = "" });
        unplaced.ScheduledNode.Should().BeEmpty();
        unplaced.NodeLost.Should().BeFalse();
    }
}

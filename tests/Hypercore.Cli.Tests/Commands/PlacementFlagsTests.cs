using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Tests.Commands;

/// <summary>Kubernetes (issue 13): `vis create` placement flags become the spec's placement.</summary>
public sealed class PlacementFlagsTests : FakeDaemonTest
{
    [Test]
    public async Task Create_PlacementFlags_FillThePlacementOfTheRequest()
    {
        var result = await Vis("create", "--name", "web", "--node-selector", "zone=a", "--node-selector", "disk=ssd",
            "--toleration", "dedicated=vms:NoSchedule", "--toleration", "gpu", "--toleration", "maintenance:NoExecute",
            "--priority-class", "vm-high", "--affinity-json", """{"nodeAffinity":{}}""");

        result.ExitCode.Should().Be(0, result.ToString());
        var placement = Service.ReceivedOf<CreateMicroVMRequest>().Should().ContainSingle().Which.Microvm.Placement;
        placement.Should().Be(new Placement
        {
            NodeSelector = { ["zone"] = "a", ["disk"] = "ssd" },
            Tolerations =
            {
                new Toleration { Key = "dedicated", Operator = "Equal", Value = "vms", Effect = "NoSchedule" },
                new Toleration { Key = "gpu", Operator = "Exists" },
                new Toleration { Key = "maintenance", Operator = "Exists", Effect = "NoExecute" },
            },
            PriorityClassName = "vm-high",
            AffinityJson = """{"nodeAffinity":{}}""",
        });
    }

    [Test]
    public async Task Create_WithoutPlacementFlags_SendsNoPlacement()
    {
        var result = await Vis("create", "--name", "web");

        result.ExitCode.Should().Be(0, result.ToString());
        Service.ReceivedOf<CreateMicroVMRequest>().Should().ContainSingle().Which.Microvm.Placement.Should().BeNull();
    }

    [Test]
    public async Task Create_NodeSelectorWithoutValue_UsageErrorAndNothingSent()
    {
        var result = await Vis("create", "--name", "web", "--node-selector", "zone");

        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Err.Should().Contain("--node-selector takes key=value, got \"zone\"");
        Service.ReceivedOf<CreateMicroVMRequest>().Should().BeEmpty();
    }
}

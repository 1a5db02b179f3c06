using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.MicroVms;
using Hypercore.Store;
using Hypercore.Store.Kubernetes;

namespace Hypercore.Kubernetes.Tests.Store;

/// <summary>
/// Kubernetes issue 13, simulated scale: 10,000 MicroVMs over 100 nodes in the test server. A node's start-up list
/// and its watch carry only its own ~100, counted by the test server.
/// </summary>
public sealed class NodeScaleTests
{
    private const int Nodes = 100;
    private const int PerNode = 100;

    [Test]
    public async Task TenThousandMicroVmsOverAHundredNodes_ANodesListAndWatchCarryOnlyItsOwnHundred()
    {
        await using var cluster = await FakeCluster.StartAsync();
        var seed = Stopwatch.StartNew();
        cluster.Server.Seed(MicroVmResource.Group, MicroVmResource.Plural, "default",
            Enumerable.Range(0, Nodes * PerNode).Select(i => new JsonObject
            {
                ["apiVersion"] = MicroVmResource.ApiVersion,
                ["kind"] = MicroVmResource.Kind,
                ["metadata"] = new JsonObject
                {
                    ["name"] = $"vm-{i:D5}",
                    ["namespace"] = "default",
                    ["labels"] = new JsonObject { [MicroVmResource.NodeLabel] = NodeOf(i) },
                },
                ["spec"] = new JsonObject { ["kernel"] = new JsonObject { ["image"] = "/k" }, ["state"] = "Stopped" },
            }));
        seed.Stop();
        cluster.Server.List(MicroVmResource.Group, MicroVmResource.Plural).Should().HaveCount(Nodes * PerNode);

        var node = cluster.NewStore("node-042");
        var other = cluster.NewStore("node-007");
        var started = Stopwatch.StartNew();
        await using var watch = new WatchRecorder(node);
        var mine = await node.ListAsync();
        var listedIn = started.Elapsed;

        mine.Should().HaveCount(PerNode);
        mine.Select(v => int.Parse(v.Spec.Id.AsSpan(3), CultureInfo.InvariantCulture) % Nodes).Should().OnlyContain(n => n == 42);
        var lists = cluster.Server.ListResults.Where(l => l.Token == "node-042" && l.Resource == MicroVmResource.Plural).ToList();
        lists.Should().NotBeEmpty().And.OnlyContain(l => l.Count == PerNode, "the start-up list carries this node's 100 of 10,000");

        // A change on node-007 and one on node-042: node-042's watch carries only its own.
        var theirs = (await other.ListAsync())[0];
        await other.UpdateSpecAsync(theirs.Key, theirs.Spec with { Vcpu = 2 }, theirs.ResourceVersion);
        var own = mine[0];
        await node.UpdateSpecAsync(own.Key, own.Spec with { Vcpu = 2 }, own.ResourceVersion);
        await watch.WaitForAsync(e => e.Type == StoreEventType.Modified && e.MicroVm?.Key == own.Key, "own change");

        var delivered = cluster.Server.DeliveredWatchEvents.Where(e => e.Token == "node-042" && e.Resource == MicroVmResource.Plural).ToList();
        delivered.Should().OnlyContain(e => e.Name == own.Spec.Id, "node-007's change never reaches node-042's watch");
        watch.Events.Should().NotContain(e => e.MicroVm != null && e.MicroVm.Key == theirs.Key);
        TestContext.Progress.WriteLine(
            $"[measure] seeded {Nodes * PerNode} MicroVMs in {seed.Elapsed.TotalSeconds:0.0} s; node-042 listed {lists[0].Count} in {listedIn.TotalMilliseconds:0} ms " +
            $"({lists.Count} list request(s)); its watch carried {delivered.Count} event(s) while 2 MicroVMs changed");
    }

    private static string NodeOf(int i) => $"node-{i % Nodes:D3}";
}

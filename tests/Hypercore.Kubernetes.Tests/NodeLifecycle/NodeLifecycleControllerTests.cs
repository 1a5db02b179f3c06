using System.Text.Json.Nodes;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.MicroVms;
using Hypercore.Store.Kubernetes;
using Hypercore.Store.Kubernetes.NodeLifecycle;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Kubernetes.Tests.NodeLifecycle;

/// <summary>
/// Kubernetes issue 13: MicroVMs of a deleted node (or one NotReady too long) are marked NodeLost and released, so
/// kubectl delete completes; only the daemon holding the Lease does it. Real kubectl against the test server, which
/// now serves Nodes and Leases.
/// </summary>
public sealed class NodeLifecycleControllerTests
{
    private const string Group = MicroVmResource.Group;
    private const string Plural = MicroVmResource.Plural;
    private FakeCluster _cluster = null!;
    private KubectlRunner _kubectl = null!;
    private readonly List<IDisposable> _clients = [];

    [SetUp]
    public async Task SetUp()
    {
        Assert.That(KubectlRunner.Available, $"{KubectlRunner.Binary} is required (Debian package kubernetes-client)");
        _cluster = await FakeCluster.StartAsync();
        _kubectl = _cluster.Kubectl();
    }

    [TearDown]
    public async Task TearDown()
    {
        _clients.ForEach(c => c.Dispose());
        var faults = _cluster.Server.Faults;
        await _cluster.DisposeAsync();
        faults.Should().BeEmpty();
    }

    private NodeLifecycleController Controller(string node, TimeProvider? time = null)
    {
        var client = new Hypercore.Store.Kubernetes.Client.KubernetesApiClient(Hypercore.Store.Kubernetes.Client.KubernetesApiConfig.FromKubeconfig(_cluster.KubeconfigFor(node)));
        _clients.Add(client);
        return new NodeLifecycleController(client,
            Options.Create(new NodeLifecycleOptions { LeaseNamespace = "default", NotReadyTimeout = TimeSpan.FromMinutes(5), LeaseDuration = TimeSpan.FromSeconds(30) }),
            Options.Create(FakeCluster.TestOptions(node)), time ?? TimeProvider.System, new TestLogger<NodeLifecycleController>());
    }

    private async Task<KubectlResult> Run(params string[] args)
    {
        var r = await _kubectl.RunAsync(args);
        r.ExitCode.Should().Be(0, $"kubectl {string.Join(' ', args)}: {r}");
        return r;
    }

    private async Task NodeAsync(string name, string ready, string since)
    {
        var path = Path.Combine(_cluster.Directory.FullName, name + ".yaml");
        await File.WriteAllTextAsync(path, $"apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n");
        await Run("apply", "--validate=false", "-f", path); // the test server has no OpenAPI for core/v1
        await Run("patch", "node", name, "--subresource=status", "--type=merge", "-p",
            $$$"""{"status":{"conditions":[{"type":"Ready","status":"{{{ready}}}","reason":"KubeletReady","lastTransitionTime":"{{{since}}}"}]}}""");
    }

    private async Task ClaimedVmAsync(string id, string node, RestartPolicy restart = RestartPolicy.Always)
    {
        var store = _cluster.NewStore(node);
        var vm = await store.CreateAsync(new MicroVmSpec { Id = id, Kernel = new KernelSpec { Image = "/k" }, RestartPolicy = restart });
        await store.ClaimAsync(vm.Key);
    }

    private JsonObject? Get(string name) => _cluster.Server.Get(Group, Plural, "default", name);

    private static string? Condition(JsonObject vm, string type, string field) =>
        (string?)(vm["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => (string?)c["type"] == type)?[field];

    [Test]
    public async Task DeletedNode_ItsMicroVmsAreReleased_SoKubectlDeleteCompletes_NotReadyPastTheTimeout_MarkedNodeLost()
    {
        await NodeAsync("node-1", "True", "2026-01-01T00:00:00Z");
        await NodeAsync("node-2", "False", "2020-01-01T00:00:00Z"); // NotReady for years
        await NodeAsync("node-3", "True", "2026-01-01T00:00:00Z");
        await NodeAsync("node-4", "False", DateTimeOffset.UtcNow.AddSeconds(-30).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'")); // NotReady, not long
        await ClaimedVmAsync("on-ready", "node-1");
        await ClaimedVmAsync("on-notready", "node-2", RestartPolicy.Never); // stays with its node (RescheduleTests: Always ones move)
        await ClaimedVmAsync("on-deleted", "node-3");
        await ClaimedVmAsync("on-flapping", "node-4");
        await Run("delete", "node", "node-3");
        await Run("delete", "mvm", "on-deleted", "--wait=false");
        Get("on-deleted").Should().NotBeNull("the finalizer holds it: node-3's daemon is gone and will never remove it");

        var leader = Controller("node-1");
        var follower = Controller("node-9");
        await leader.RunOnceAsync(CancellationToken.None);
        await follower.RunOnceAsync(CancellationToken.None);

        Get("on-deleted").Should().BeNull("its finalizer was released and the pending delete completed");
        (await _kubectl.RunAsync("get", "mvm", "on-deleted")).Stderr.Should().Contain("NotFound");
        var lost = Get("on-notready")!;
        Condition(lost, "NodeLost", "status").Should().Be("True");
        Condition(lost, "NodeLost", "reason").Should().Be("NodeNotReady");
        Condition(lost, "NodeLost", "message").Should().Contain("node \"node-2\" has not been Ready since 2020-01-01");
        Condition(lost, "Ready", "reason").Should().Be("NodeLost");
        MicroVmResource.HasFinalizer(lost).Should().BeFalse();
        foreach (var healthy in new[] { "on-ready", "on-flapping" })
        {
            MicroVmResource.HasFinalizer(Get(healthy)!).Should().BeTrue($"{healthy}'s node is healthy (or not NotReady for long)");
            Condition(Get(healthy)!, "NodeLost", "status").Should().BeNull();
        }

        leader.Released.Should().Be(2);
        follower.Released.Should().Be(0);
        var lists = _cluster.Server.Requests.Where(r => r.Resource == Plural && r.Verb == "list" && r.Token is "node-1" or "node-9").ToList();
        lists.Should().HaveCount(2, "only the Lease holder looks for lost nodes' MicroVMs, and for returned ones");
        lists.Should().OnlyContain(r => r.Token == "node-1");
        lists[1].LabelSelector.Should().Be(NodeLifecycleController.NodeLostLabel, "MicroVMs that stayed with a lost node are found by their mark, never by a cluster-wide list");
        lists[0].LabelSelector.Should().Be("hypercore.vistara.dev/node,hypercore.vistara.dev/node notin (node-1,node-4)",
            "the leader lists only MicroVMs of nodes that are not healthy");
        _cluster.Server.Requests.Should().NotContain(r => r.Token == "node-9" && r.Resource == "nodes");

        var delete = await _kubectl.RunAsync("delete", "mvm", "on-notready", "--wait=false");
        delete.ExitCode.Should().Be(0, delete.ToString());
        Get("on-notready").Should().BeNull("a NodeLost MicroVM has no finalizer left: delete completes at once");
    }

    [Test]
    public async Task Lease_HeldByOneDaemon_TakenOverOnlyAfterItExpires()
    {
        await NodeAsync("node-1", "True", "2026-01-01T00:00:00Z");
        var first = Controller("node-1");
        var later = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var second = Controller("node-2", later);

        await first.RunOnceAsync(CancellationToken.None);
        await second.RunOnceAsync(CancellationToken.None);
        var held = _cluster.Server.Get("coordination.k8s.io", "leases", "default", "hypercore-node-lifecycle")!;
        ((string?)held["spec"]!["holderIdentity"]).Should().Be("node-1");
        _cluster.Server.Requests.Should().NotContain(r => r.Token == "node-2" && r.Resource == "nodes", "a follower does no work");

        later.Advance(TimeSpan.FromSeconds(45)); // node-1 stopped renewing 45 s ago by node-2's clock; the Lease lasts 30 s
        await second.RunOnceAsync(CancellationToken.None);

        var taken = _cluster.Server.Get("coordination.k8s.io", "leases", "default", "hypercore-node-lifecycle")!;
        ((string?)taken["spec"]!["holderIdentity"]).Should().Be("node-2");
        ((int)taken["spec"]!["leaseTransitions"]!).Should().Be(1);
        _cluster.Server.Requests.Should().Contain(r => r.Token == "node-2" && r.Resource == "nodes", "the new holder does the work");
    }
}

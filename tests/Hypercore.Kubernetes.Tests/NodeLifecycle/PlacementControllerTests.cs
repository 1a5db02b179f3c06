using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.MicroVms;
using Hypercore.Store.Kubernetes;
using Hypercore.Store.Kubernetes.NodeLifecycle;
using Microsoft.Extensions.Options;

namespace Hypercore.Kubernetes.Tests.NodeLifecycle;

/// <summary>
/// Kubernetes issue 13, placement by kube-scheduler: a MicroVM applied without a node gets a reservation pod; the
/// test plays kube-scheduler (binds it through pods/binding, or marks it Unschedulable); the MicroVM then gets the
/// node (spec.nodeName and label, so that node's daemon sees it) or Scheduled=False with the scheduler's message.
/// </summary>
public sealed class PlacementControllerTests
{
    private FakeCluster _cluster = null!;
    private KubectlRunner _kubectl = null!;
    private Hypercore.Store.Kubernetes.Client.KubernetesApiClient _client = null!;
    private NodeLifecycleController _leader = null!;

    [SetUp]
    public async Task SetUp()
    {
        Assert.That(KubectlRunner.Available, $"{KubectlRunner.Binary} is required (Debian package kubernetes-client)");
        _cluster = await FakeCluster.StartAsync();
        _kubectl = _cluster.Kubectl();
        _client = new Hypercore.Store.Kubernetes.Client.KubernetesApiClient(Hypercore.Store.Kubernetes.Client.KubernetesApiConfig.FromKubeconfig(_cluster.KubeconfigFor("node-1")));
        _leader = new NodeLifecycleController(_client, Options.Create(new NodeLifecycleOptions { LeaseNamespace = "default" }),
            Options.Create(FakeCluster.TestOptions("node-1")), TimeProvider.System, new TestLogger<NodeLifecycleController>(),
            new PlacementOptions { PauseImage = "registry.test/pause:1" });
        var node = Path.Combine(_cluster.Directory.FullName, "node.yaml");
        await File.WriteAllTextAsync(node, "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n");
        await Run("apply", "--validate=false", "-f", node);
    }

    [TearDown]
    public async Task TearDown()
    {
        _leader.Dispose();
        _client.Dispose();
        var faults = _cluster.Server.Faults;
        await _cluster.DisposeAsync();
        faults.Should().BeEmpty();
    }

    private async Task<KubectlResult> Run(params string[] args)
    {
        var r = await _kubectl.RunAsync(args);
        r.ExitCode.Should().Be(0, $"kubectl {string.Join(' ', args)}: {r}");
        return r;
    }

    private async Task ApplyUnplacedAsync(string name, int vcpu, int memory)
    {
        var path = Path.Combine(_cluster.Directory.FullName, name + ".yaml");
        await File.WriteAllTextAsync(path, $"""
            apiVersion: hypercore.vistara.dev/v1alpha1
            kind: MicroVM
            metadata:
              name: {name}
              namespace: default
            spec:
              vcpu: {vcpu}
              memoryInMb: {memory}
              kernel: {"{"} image: /k {"}"}
              placement:
                nodeSelector: {"{"} zone: a {"}"}
                tolerations:
                  - key: dedicated
                    operator: Equal
                    value: vms
                    effect: NoSchedule
                priorityClassName: vm-high
            """);
        await Run("apply", "-f", path);
    }

    private JsonObject Vm(string name) => _cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, "default", name)!;

    private static string? Condition(JsonObject vm, string type, string field) =>
        (string?)(vm["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => (string?)c["type"] == type)?[field];

    [Test]
    public async Task RestoreFromMicroVmSnapshot_WaitsUntilReady_ThenItsPodIsPinnedToTheSnapshotsNode_AndTheUsersOwnAffinity()
    {
        var vmFile = Path.Combine(_cluster.Directory.FullName, "clone.yaml");
        await File.WriteAllTextAsync(vmFile, """
            apiVersion: hypercore.vistara.dev/v1alpha1
            kind: MicroVM
            metadata:
              name: clone
              namespace: default
            spec:
              vcpu: 1
              memoryInMb: 128
              kernel: { image: /k }
              restoreFrom: snap1
              placement:
                affinity:
                  nodeAffinity:
                    requiredDuringSchedulingIgnoredDuringExecution:
                      nodeSelectorTerms:
                        - matchExpressions: [ { key: zone, operator: In, values: [a] } ]
                        - matchExpressions: [ { key: zone, operator: In, values: [b] } ]
            """);
        await Run("apply", "-f", vmFile);

        await _leader.RunOnceAsync(CancellationToken.None);

        _cluster.Server.Get("", "pods", "default", "mvm-clone").Should().BeNull("no node is known to hold snap1's files");
        Condition(Vm("clone"), "Scheduled", "status").Should().Be("False");
        Condition(Vm("clone"), "Scheduled", "reason").Should().Be(PlacementController.ReasonSnapshotNotFound);
        Condition(Vm("clone"), "Scheduled", "message").Should().Contain("MicroVMSnapshot \"snap1\"").And.Contain("spec.nodeName");

        var snapFile = Path.Combine(_cluster.Directory.FullName, "snap1.yaml");
        await File.WriteAllTextAsync(snapFile, "apiVersion: hypercore.vistara.dev/v1alpha1\nkind: MicroVMSnapshot\nmetadata:\n  name: snap1\n  namespace: default\nspec:\n  microVMName: source\n");
        await Run("apply", "-f", snapFile);
        await _leader.RunOnceAsync(CancellationToken.None);

        _cluster.Server.Get("", "pods", "default", "mvm-clone").Should().BeNull("snap1 is not taken yet");
        Condition(Vm("clone"), "Scheduled", "reason").Should().Be(PlacementController.ReasonSnapshotNotReady);

        await Run("patch", "mvmsnap", "snap1", "--subresource=status", "--type=merge", "-p", """{"status":{"phase":"Ready","node":"node-7"}}""");
        await _leader.RunOnceAsync(CancellationToken.None);

        var terms = _cluster.Server.Get("", "pods", "default", "mvm-clone")!["spec"]!["affinity"]!["nodeAffinity"]!
            ["requiredDuringSchedulingIgnoredDuringExecution"]!["nodeSelectorTerms"]!.AsArray();
        terms.Should().HaveCount(2, "the user's terms are kept (ORed)");
        foreach (var term in terms)
        {
            ((string?)term!["matchExpressions"]![0]!["key"]).Should().Be("zone", "the user's own rule stays in its term");
            var field = term["matchFields"]!.AsArray().Single()!;
            ((string?)field["key"]).Should().Be("metadata.name");
            ((string?)field["operator"]).Should().Be("In");
            field["values"]!.AsArray().Select(v => (string?)v).Should().Equal("node-7");
        }
    }

    [Test]
    public void PinnedToNode_WithoutAffinity_MakesOneRequiredTerm()
    {
        var affinity = PlacementController.PinnedToNode(new JsonObject(), "node-3");

        affinity.ToJsonString().Should().Be(
            """{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchFields":[{"key":"metadata.name","operator":"In","values":["node-3"]}]}]}}}""");
    }

    [Test]
    public async Task UnplacedMicroVm_GetsAReservationPod_BoundByTheScheduler_ThenItsNodeIsRecorded()
    {
        await ApplyUnplacedAsync("web", vcpu: 2, memory: 256);
        (await _cluster.NewStore("node-1").GetAsync(new VmKey("default", "web"))).Should().BeNull("no node has it yet");

        await _leader.RunOnceAsync(CancellationToken.None);

        var pod = _cluster.Server.Get("", "pods", "default", "mvm-web")!;
        var owner = pod["metadata"]!["ownerReferences"]![0]!;
        ((string?)owner["kind"]).Should().Be("MicroVM");
        ((string?)owner["uid"]).Should().Be((string?)Vm("web")["metadata"]!["uid"]);
        var container = pod["spec"]!["containers"]![0]!;
        ((string?)container["image"]).Should().Be("registry.test/pause:1");
        ((string?)container["resources"]!["requests"]!["cpu"]).Should().Be("2");
        ((string?)container["resources"]!["requests"]!["memory"]).Should().Be("320Mi", "guest memory 256 MiB + 64 MiB overhead");
        ((string?)pod["spec"]!["nodeSelector"]!["zone"]).Should().Be("a");
        ((string?)pod["spec"]!["nodeSelector"]!["hypercore.vistara.dev/kvm"]).Should().Be("true", "only Hypercore nodes");
        ((string?)pod["spec"]!["tolerations"]![0]!["key"]).Should().Be("dedicated");
        ((string?)pod["spec"]!["priorityClassName"]).Should().Be("vm-high");

        // kube-scheduler's part: bind the pod.
        using (var http = new HttpClient { BaseAddress = _cluster.Server.BaseAddress })
        {
            var binding = """{"apiVersion":"v1","kind":"Binding","metadata":{"name":"mvm-web"},"target":{"apiVersion":"v1","kind":"Node","name":"node-1"}}""";
            using var response = await http.PostAsync("api/v1/namespaces/default/pods/mvm-web/binding",
                new StringContent(binding, Encoding.UTF8, new MediaTypeHeaderValue("application/json")));
            response.IsSuccessStatusCode.Should().BeTrue(await response.Content.ReadAsStringAsync());
        }

        await _leader.RunOnceAsync(CancellationToken.None);

        var placed = Vm("web");
        ((string?)placed["spec"]!["nodeName"]).Should().Be("node-1");
        ((string?)placed["metadata"]!["labels"]![MicroVmResource.NodeLabel]).Should().Be("node-1");
        Condition(placed, "Scheduled", "status").Should().Be("True");
        ((string?)placed["spec"]!["placement"]!["priorityClassName"]).Should().Be("vm-high");
        (await _cluster.NewStore("node-1").GetAsync(new VmKey("default", "web"))).Should().NotBeNull("node-1's daemon now sees and runs it");
        var move = await _kubectl.RunAsync("patch", "mvm", "web", "--type=merge", "-p", """{"spec":{"nodeName":"node-2"}}""");
        move.ExitCode.Should().NotBe(0, "once placed, the node is fixed");
    }

    [Test]
    public async Task CreatedThroughTheApiWithPlacement_IsLeftUnplaced_ItsPodCarriesThePlacement_ThenItRoundTrips()
    {
        var placement = new PlacementSpec
        {
            NodeSelector = new Dictionary<string, string> { ["zone"] = "b" },
            Tolerations = [new TolerationSpec { Key = "dedicated", Operator = "Equal", Value = "vms", Effect = "NoExecute", TolerationSeconds = 60 }],
            AffinityJson = """{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"disk","operator":"In","values":["ssd"]}]}]}}}""",
            PriorityClassName = "vm-high",
        };
        var receiving = _cluster.NewStore("node-1"); // the daemon whose gRPC Create was called
        await receiving.CreateAsync(new MicroVmSpec { Id = "api", Kernel = new KernelSpec { Image = "/k" }, Placement = placement });

        var stored = Vm("api");
        stored["metadata"]!["labels"]?[MicroVmResource.NodeLabel].Should().BeNull("with a placement, kube-scheduler picks the node, not the receiving daemon");
        ((string?)stored["spec"]!["placement"]!["nodeSelector"]!["zone"]).Should().Be("b");
        ((long?)stored["spec"]!["placement"]!["tolerations"]![0]!["tolerationSeconds"]).Should().Be(60);
        (await receiving.GetAsync(new VmKey("default", "api"))).Should().BeNull("no node has it yet");

        await _leader.RunOnceAsync(CancellationToken.None);

        var pod = _cluster.Server.Get("", "pods", "default", "mvm-api")!;
        ((string?)pod["spec"]!["nodeSelector"]!["zone"]).Should().Be("b");
        ((string?)pod["spec"]!["tolerations"]![0]!["effect"]).Should().Be("NoExecute");
        ((string?)pod["spec"]!["affinity"]!["nodeAffinity"]!["requiredDuringSchedulingIgnoredDuringExecution"]!["nodeSelectorTerms"]![0]!["matchExpressions"]![0]!["key"])
            .Should().Be("disk");
        ((string?)pod["spec"]!["priorityClassName"]).Should().Be("vm-high");
        using (var http = new HttpClient { BaseAddress = _cluster.Server.BaseAddress })
        {
            var binding = """{"apiVersion":"v1","kind":"Binding","metadata":{"name":"mvm-api"},"target":{"apiVersion":"v1","kind":"Node","name":"node-1"}}""";
            using var response = await http.PostAsync("api/v1/namespaces/default/pods/mvm-api/binding",
                new StringContent(binding, Encoding.UTF8, new MediaTypeHeaderValue("application/json")));
            response.IsSuccessStatusCode.Should().BeTrue(await response.Content.ReadAsStringAsync());
        }

        await _leader.RunOnceAsync(CancellationToken.None);

        var placed = await receiving.GetAsync(new VmKey("default", "api"));
        placed.Should().NotBeNull();
        placed!.Spec.NodeName.Should().Be("node-1");
        placed.Spec.Placement.Should().Be(placement with { AffinityJson = JsonNode.Parse(placement.AffinityJson!)!.ToJsonString() });
    }

    [Test]
    public async Task Unschedulable_ReservationPod_GivesScheduledFalseWithTheSchedulersMessage()
    {
        await ApplyUnplacedAsync("big", vcpu: 4, memory: 65536);
        await _leader.RunOnceAsync(CancellationToken.None);
        await Run("patch", "pod", "mvm-big", "--subresource=status", "--type=merge", "-p",
            """{"status":{"conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/3 nodes are available: 3 Insufficient memory."}]}}""");

        await _leader.RunOnceAsync(CancellationToken.None);

        var vm = Vm("big");
        Condition(vm, "Scheduled", "status").Should().Be("False");
        Condition(vm, "Scheduled", "reason").Should().Be("Unschedulable");
        Condition(vm, "Scheduled", "message").Should().Contain("0/3 nodes are available: 3 Insufficient memory.");
        ((string?)vm["spec"]!["nodeName"]).Should().BeNull();
        var table = await Run("get", "mvm", "big", "-o", "jsonpath={.status.conditions[?(@.type==\"Scheduled\")].message}");
        table.Stdout.Should().Contain("Insufficient memory");
    }
}

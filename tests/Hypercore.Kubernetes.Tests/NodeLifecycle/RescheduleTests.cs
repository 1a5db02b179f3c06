using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Store.Kubernetes;
using Hypercore.Store.Kubernetes.NodeLifecycle;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Kubernetes.Tests.NodeLifecycle;

/// <summary>
/// Kubernetes issue 13, lost nodes: a restartPolicy Always MicroVM of a lost node is moved (same object: name,
/// namespace and uid; spec.nodeName, node label and finalizer removed) and placement finds it a new node through a new
/// reservation pod; Never/OnFailure ones, and ones with a writable host disk, stay Failed with NodeLost. A node that
/// comes back gets NodeLost=False on the MicroVMs that stayed, does not start them again, and stops the leftover
/// hypervisor of one that was moved. Two nodes are two real reconcilers, each on its own Kubernetes store and its own
/// in-memory driver; the test plays kube-scheduler (pods/binding) and kubelet (Node Ready condition).
/// </summary>
[NonParallelizable]
public sealed class RescheduleTests
{
    private const string Group = MicroVmResource.Group;
    private const string Plural = MicroVmResource.Plural;
    private FakeCluster _cluster = null!;
    private KubectlRunner _kubectl = null!;
    private Hypercore.Store.Kubernetes.Client.KubernetesApiClient _client = null!;
    private NodeLifecycleController _leader = null!;
    private readonly List<(ReconcilerHost Host, MicroVmInformer Informer)> _nodes = [];

    [SetUp]
    public async Task SetUp()
    {
        Assert.That(KubectlRunner.Available, $"{KubectlRunner.Binary} is required (Debian package kubernetes-client)");
        _cluster = await FakeCluster.StartAsync();
        _kubectl = _cluster.Kubectl();
        _client = new Hypercore.Store.Kubernetes.Client.KubernetesApiClient(Hypercore.Store.Kubernetes.Client.KubernetesApiConfig.FromKubeconfig(_cluster.KubeconfigFor("leader")));
        _leader = new NodeLifecycleController(_client,
            Options.Create(new NodeLifecycleOptions { LeaseNamespace = "default", NotReadyTimeout = TimeSpan.FromMinutes(5) }),
            Options.Create(FakeCluster.TestOptions("leader")), TimeProvider.System, new TestLogger<NodeLifecycleController>(),
            new PlacementOptions { PauseImage = "registry.test/pause:1" });
    }

    [TearDown]
    public async Task TearDown()
    {
        try
        {
            foreach (var (host, informer) in _nodes)
            {
                await StopNodeAsync(host, informer);
            }
        }
        finally
        {
            _leader.Dispose();
            _client.Dispose();
            var faults = _cluster.Server.Faults;
            await _cluster.DisposeAsync();
            faults.Should().BeEmpty();
        }
    }

    private static async Task StopNodeAsync(ReconcilerHost host, MicroVmInformer informer)
    {
        await host.StopAsync(CancellationToken.None);
        host.Dispose();
        await informer.StopAsync(CancellationToken.None);
        informer.Dispose();
    }

    /// <summary>One node's daemon: the real informer, reconciler and work loop on its own store, with <paramref name="driver"/>.</summary>
    private async Task<(ReconcilerHost Host, MicroVmInformer Informer)> StartNodeAsync(string node, FakeDriver driver)
    {
        var store = _cluster.NewStore(node);
        var drivers = new DriverRegistry([driver], "qemu");
        var options = Options.Create(new ReconcilerOptions
        {
            NodeName = node,
            Workers = 2,
            PollInterval = TimeSpan.FromMilliseconds(200),
            ResyncInterval = TimeSpan.FromSeconds(1),
            BackoffBase = TimeSpan.FromMilliseconds(100),
            BackoffCap = TimeSpan.FromSeconds(1),
            StopGracePeriod = TimeSpan.Zero,
        });
        var reconciler = new Reconciler(store, drivers, TimeProvider.System, options, NullLogger<Reconciler>.Instance);
        var informer = new MicroVmInformer(store, TimeProvider.System, Options.Create(new InformerOptions()), NullLogger<MicroVmInformer>.Instance);
        await informer.StartAsync(CancellationToken.None);
        var host = new ReconcilerHost(informer, drivers, reconciler, options, TimeProvider.System, NullLogger<ReconcilerHost>.Instance,
            movedAway: store); // as AddKubernetesStore registers it for the daemon
        await host.StartAsync(CancellationToken.None);
        _nodes.Add((host, informer));
        return (host, informer);
    }

    private async Task<KubectlResult> Run(params string[] args)
    {
        var r = await _kubectl.RunAsync(args);
        r.ExitCode.Should().Be(0, $"kubectl {string.Join(' ', args)}: {r}");
        return r;
    }

    private async Task NodeAsync(string name, bool ready)
    {
        var path = Path.Combine(_cluster.Directory.FullName, name + ".yaml");
        await File.WriteAllTextAsync(path, $"apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n");
        await Run("apply", "--validate=false", "-f", path);
        var (status, since) = ready ? ("True", "2026-01-01T00:00:00Z") : ("False", "2020-01-01T00:00:00Z"); // NotReady for years
        await Run("patch", "node", name, "--subresource=status", "--type=merge", "-p",
            $$$"""{"status":{"conditions":[{"type":"Ready","status":"{{{status}}}","reason":"KubeletReady","lastTransitionTime":"{{{since}}}"}]}}""");
    }

    private async Task ApplyAsync(string name, string restartPolicy, string? node = null, string? disk = null)
    {
        var path = Path.Combine(_cluster.Directory.FullName, name + ".yaml");
        var nodeLine = node is null ? "" : $"\n  nodeName: {node}";
        var labels = node is null ? "" : $"\n  labels:\n    {MicroVmResource.NodeLabel}: {node}";
        var diskLines = disk is null ? "" : $"\n  rootVolume:\n    id: root\n    hostPath: {disk}";
        await File.WriteAllTextAsync(path, $"""
            apiVersion: hypercore.vistara.dev/v1alpha1
            kind: MicroVM
            metadata:
              name: {name}
              namespace: default{labels}
            spec:
              provider: qemu
              restartPolicy: {restartPolicy}
              kernel:
                image: /k{nodeLine}{diskLines}
            """);
        await Run("apply", "-f", path);
    }

    private async Task BindAsync(string pod, string node)
    {
        using var http = new HttpClient { BaseAddress = _cluster.Server.BaseAddress };
        var binding = $$$"""{"apiVersion":"v1","kind":"Binding","metadata":{"name":"{{{pod}}}"},"target":{"apiVersion":"v1","kind":"Node","name":"{{{node}}}"}}""";
        using var response = await http.PostAsync($"api/v1/namespaces/default/pods/{pod}/binding",
            new StringContent(binding, Encoding.UTF8, new MediaTypeHeaderValue("application/json")));
        response.IsSuccessStatusCode.Should().BeTrue(await response.Content.ReadAsStringAsync());
    }

    /// <summary>Unplaced → reservation pod → the test binds it to <paramref name="node"/> → the leader records the node.</summary>
    private async Task PlaceAsync(string name, string node)
    {
        await _leader.RunOnceAsync(CancellationToken.None);
        _cluster.Server.Get("", "pods", "default", PlacementController.PodName(name)).Should().NotBeNull("placement made a reservation pod");
        await BindAsync(PlacementController.PodName(name), node);
        await _leader.RunOnceAsync(CancellationToken.None);
        ((string?)Vm(name)["spec"]!["nodeName"]).Should().Be(node);
    }

    private JsonObject Vm(string name) => _cluster.Server.Get(Group, Plural, "default", name) ?? throw new AssertionException($"{name} is gone");

    private JsonObject? Pod(string name) => _cluster.Server.Get("", "pods", "default", PlacementController.PodName(name));

    private static string? Condition(JsonObject vm, string type, string field) =>
        (string?)(vm["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => (string?)c["type"] == type)?[field];

    private Task PhaseAsync(string name, string phase, string? node = null) =>
        Eventually.UntilAsync(() => _cluster.Server.Get(Group, Plural, "default", name) is { } vm &&
                                    (string?)vm["status"]?["phase"] == phase && (node is null || (string?)vm["status"]?["node"] == node),
            $"{name} {phase}{(node is null ? "" : " on " + node)}");

    [Test]
    public async Task DeletedNode_RestartAlwaysVm_IsMovedKeepingItsUid_PlacedAgain_OthersStayFailed_UntilTheNodeReturns()
    {
        await NodeAsync("node-1", ready: true);
        await NodeAsync("node-2", ready: true);
        await NodeAsync("node-3", ready: true);
        await ApplyAsync("web", "Always");
        await PlaceAsync("web", "node-3");
        await ApplyAsync("job", "Never", node: "node-3");
        await ApplyAsync("data", "Always", node: "node-3", disk: "/var/lib/vms/data.img");
        var node3 = _cluster.NewStore("node-3");
        foreach (var name in new[] { "web", "job", "data" })
        {
            var vm = await node3.ClaimAsync(new VmKey("default", name));
            await node3.UpdateStatusAsync(vm.Key, vm.Status with { Phase = Phase.Running, Pid = 4242, Node = "node-3" }, vm.ResourceVersion);
        }

        var uid = (string?)Vm("web")["metadata"]!["uid"];
        var oldPod = (string?)Pod("web")!["metadata"]!["uid"];
        await Run("delete", "node", "node-3");

        await _leader.RunOnceAsync(CancellationToken.None);

        var moved = Vm("web");
        ((string?)moved["metadata"]!["uid"]).Should().Be(uid, "the same object moves: name, namespace and uid are kept");
        ((string?)moved["spec"]!["nodeName"]).Should().BeNull();
        moved["metadata"]!["labels"]?[MicroVmResource.NodeLabel].Should().BeNull();
        MicroVmResource.HasFinalizer(moved).Should().BeFalse("the lost node's daemon will never clean it up; the new node claims it again");
        ((string?)moved["metadata"]!["annotations"]![NodeLifecycleController.RescheduledFromAnnotation]).Should().Be("node-3");
        ((string?)moved["metadata"]!["labels"]![MicroVmResource.MovedFromLabel]).Should().Be("node-3", "node-3's daemon finds it by this label if it comes back");
        ((string?)moved["status"]!["phase"]).Should().Be("Pending");
        moved["status"]!["pid"].Should().BeNull("the pid was a process on the lost node");
        Condition(moved, "NodeLost", "status").Should().Be("True");
        Condition(moved, "NodeLost", "reason").Should().Be("NodeDeleted");
        Condition(moved, "NodeLost", "message").Should().Contain("node \"node-3\" no longer exists").And.Contain("restartPolicy Always: rescheduling");
        Condition(moved, "Scheduled", "reason").Should().Be("Rescheduling");
        _cluster.Server.List("", "events").Should().Contain(e => (string?)e["reason"] == "Rescheduled" && (string?)e["involvedObject"]!["name"] == "web");
        var pod = Pod("web")!;
        ((string?)pod["metadata"]!["uid"]).Should().NotBe(oldPod, "the pod bound to the lost node was deleted and placement made a new one");
        pod["spec"]!["nodeName"].Should().BeNull("kube-scheduler has not bound the new one yet");
        _leader.Rescheduled.Should().Be(1);

        foreach (var (name, why) in new[] { ("job", "restartPolicy Never: not rescheduled"), ("data", "writable host file /var/lib/vms/data.img") })
        {
            var stayed = Vm(name);
            ((string?)stayed["status"]!["phase"]).Should().Be("Failed", name);
            Condition(stayed, "NodeLost", "status").Should().Be("True");
            Condition(stayed, "NodeLost", "message").Should().Contain(why);
            Condition(stayed, "Ready", "reason").Should().Be("NodeLost");
            ((string?)stayed["metadata"]!["labels"]![MicroVmResource.NodeLabel]).Should().Be("node-3", $"{name} stays with its node");
            ((string?)stayed["metadata"]!["labels"]![NodeLifecycleController.NodeLostLabel]).Should().Be("true");
            MicroVmResource.HasFinalizer(stayed).Should().BeFalse("so that kubectl delete completes");
        }

        await BindAsync(PlacementController.PodName("web"), "node-2");
        await _leader.RunOnceAsync(CancellationToken.None);

        var placed = Vm("web");
        ((string?)placed["spec"]!["nodeName"]).Should().Be("node-2");
        Condition(placed, "Scheduled", "status").Should().Be("True");
        Condition(placed, "NodeLost", "status").Should().Be("False");
        Condition(placed, "NodeLost", "reason").Should().Be("Rescheduled");
        Condition(placed, "NodeLost", "message").Should().Contain("moved off lost node \"node-3\"");
        (await _cluster.NewStore("node-2").GetAsync(new VmKey("default", "web"))).Should().NotBeNull("node-2's daemon runs it now");
        (await node3.GetAsync(new VmKey("default", "web"))).Should().BeNull("node-3 never sees it again");
        var remove = await _kubectl.RunAsync("patch", "mvm", "web", "--type=json", "-p", """[{"op":"remove","path":"/spec/nodeName"}]""");
        remove.ExitCode.Should().NotBe(0, "a MicroVM on a healthy node keeps its node");
        remove.Stderr.Should().Contain("spec.nodeName cannot be removed once set");

        await NodeAsync("node-3", ready: true); // it comes back (re-registers)
        await _leader.RunOnceAsync(CancellationToken.None);

        var back = Vm("job");
        Condition(back, "NodeLost", "status").Should().Be("False");
        Condition(back, "NodeLost", "reason").Should().Be("NodeReturned");
        ((string?)back["status"]!["phase"]).Should().Be("Failed", "restartPolicy Never: what ended with its node stays down");
        back["metadata"]!["labels"]![NodeLifecycleController.NodeLostLabel].Should().BeNull();
        ((string?)Vm("web")["spec"]!["nodeName"]).Should().Be("node-2", "a moved MicroVM does not go back");
        (await _kubectl.RunAsync("delete", "mvm", "data", "--wait=false")).ExitCode.Should().Be(0);
        _cluster.Server.Get(Group, Plural, "default", "data").Should().BeNull("no finalizer held it");
    }

    [Test]
    public async Task NodeCutOff_ItsRestartAlwaysVmBootsOnTheOtherNode_AndTheNodeStopsItsLeftoverCopy()
    {
        await NodeAsync("node-1", ready: true);
        await NodeAsync("node-2", ready: true);
        var one = new FakeDriver("qemu");
        var two = new FakeDriver("qemu");
        await StartNodeAsync("node-1", one);
        await StartNodeAsync("node-2", two);
        await ApplyAsync("web", "Always");
        await PlaceAsync("web", "node-1");
        await ApplyAsync("job", "Never", node: "node-1");
        await PhaseAsync("web", "Running", "node-1");
        await PhaseAsync("job", "Running", "node-1");
        var uid = (string)Vm("web")["metadata"]!["uid"]!;
        var jobUid = (string)Vm("job")["metadata"]!["uid"]!;
        one.IsRunning(uid).Should().BeTrue();

        // node-1's kubelet stops reporting; its vistarad (and the guest) go on: a partition that heals, as the
        // daemon's watch sees the move once it reaches the API server again (here at once).
        await NodeAsync("node-1", ready: false);
        await _leader.RunOnceAsync(CancellationToken.None);

        ((string?)Vm("web")["metadata"]!["uid"]).Should().Be(uid);
        await Eventually.UntilAsync(() => !one.IsRunning(uid), "node-1 to stop its copy of the moved VM");
        one.Calls.Should().Contain(["Stop web", "Cleanup web"]);

        // The Never VM stays with node-1, released; node-1's daemon, which still reaches the API server, does not
        // claim it back or rewrite its status while the cluster has node-1 for lost (it would undo the release).
        await Task.Delay(TimeSpan.FromSeconds(1)); // five polls
        var released = Vm("job");
        MicroVmResource.HasFinalizer(released).Should().BeFalse();
        ((string?)released["status"]!["phase"]).Should().Be("Failed");
        Condition(released, "NodeLost", "status").Should().Be("True");
        one.IsRunning(jobUid).Should().BeTrue("its hypervisor is left as it is");

        await BindAsync(PlacementController.PodName("web"), "node-2");
        await _leader.RunOnceAsync(CancellationToken.None);
        await PhaseAsync("web", "Running", "node-2");
        two.IsRunning(uid).Should().BeTrue("node-2 boots the same MicroVM (same uid)");
        MicroVmResource.HasFinalizer(Vm("web")).Should().BeTrue("node-2 claimed it");

        await NodeAsync("node-1", ready: true);
        await _leader.RunOnceAsync(CancellationToken.None);
        await Eventually.UntilAsync(() => MicroVmResource.HasFinalizer(Vm("job")) && (string?)Vm("job")["status"]?["phase"] == "Running",
            "node-1, no longer lost, to claim the Never VM back and report its still-running guest");
        Condition(Vm("job"), "NodeLost", "reason").Should().Be("NodeReturned");
        one.Calls.Count(c => c == "Start job").Should().Be(1, "the running guest was adopted, not started again");
        await Task.Delay(TimeSpan.FromSeconds(2)); // node-1 polls and resyncs every 0.2 s / 1 s: time to do something wrong
        one.Calls.Count(c => c == "Start web").Should().Be(1, "node-1 never starts the VM that moved away");
        one.IsRunning(uid).Should().BeFalse();
        two.Calls.Count(c => c == "Start web").Should().Be(1);
        ((string?)Vm("web")["status"]!["node"]).Should().Be("node-2");
    }

    [Test]
    public async Task DaemonRestartedOnTheReturningNode_RemovesTheLeftoverOfAVmMovedAway_AndLeavesOtherOrphansAlone()
    {
        await NodeAsync("node-1", ready: true);
        await NodeAsync("node-2", ready: true);
        var one = new FakeDriver("qemu");
        var two = new FakeDriver("qemu");
        var first = await StartNodeAsync("node-1", one);
        await StartNodeAsync("node-2", two);
        await ApplyAsync("web", "Always");
        await PlaceAsync("web", "node-1");
        await PhaseAsync("web", "Running", "node-1");
        var uid = (string)Vm("web")["metadata"]!["uid"]!;

        // node-1's daemon goes (its pod deleted, say) while the guest runs on in its own scope; plus an instance that
        // no MicroVM accounts for at all.
        await StopNodeAsync(first.Host, first.Informer);
        _nodes.Remove(first);
        await one.StartAsync(new MicroVm { Uid = "stray-uid", ResourceVersion = "1", Spec = new MicroVmSpec { Id = "stray", Kernel = new KernelSpec { Image = "/k" } } });
        await NodeAsync("node-1", ready: false);
        await _leader.RunOnceAsync(CancellationToken.None);
        await BindAsync(PlacementController.PodName("web"), "node-2");
        await _leader.RunOnceAsync(CancellationToken.None);
        await PhaseAsync("web", "Running", "node-2");
        one.IsRunning(uid).Should().BeTrue("no daemon on node-1 was there to stop it");

        await NodeAsync("node-1", ready: true);
        await StartNodeAsync("node-1", one); // the daemon is back; its store does not show web any more

        await Eventually.UntilAsync(() => !one.IsRunning(uid), "the restarted node-1 daemon to remove the leftover of the VM that moved away");
        one.Calls.Should().Contain("Cleanup web");
        one.Calls.Count(c => c == "Start web").Should().Be(1);
        one.IsRunning("stray-uid").Should().BeTrue("an instance that no MicroVM accounts for is only reported, as before");
        two.IsRunning(uid).Should().BeTrue("the VM runs on node-2");
        ((string?)Vm("web")["status"]!["node"]).Should().Be("node-2");
    }

    [Test]
    public async Task NodeRebootedWhileLost_ItsRestartNeverVm_StaysFailed_AndNodeLostIsClearedWhenItIsBack()
    {
        await NodeAsync("node-1", ready: true);
        var before = new FakeDriver("qemu");
        var (host, informer) = await StartNodeAsync("node-1", before);
        await ApplyAsync("job", "Never", node: "node-1");
        await PhaseAsync("job", "Running", "node-1");

        // The node goes down (daemon and guest with it) and stays NotReady past the timeout.
        await StopNodeAsync(host, informer);
        _nodes.Clear();
        await NodeAsync("node-1", ready: false);
        await _leader.RunOnceAsync(CancellationToken.None);
        ((string?)Vm("job")["status"]!["phase"]).Should().Be("Failed");
        Condition(Vm("job"), "NodeLost", "status").Should().Be("True");

        // It boots again: a fresh daemon with nothing running, and Ready.
        var after = new FakeDriver("qemu");
        await StartNodeAsync("node-1", after);
        await NodeAsync("node-1", ready: true);
        await _leader.RunOnceAsync(CancellationToken.None);
        await Eventually.UntilAsync(() => MicroVmResource.HasFinalizer(Vm("job")), "the returning daemon to claim its MicroVM again");
        await Task.Delay(TimeSpan.FromSeconds(1)); // a few polls

        after.Calls.Should().NotContain("Start job", "restartPolicy Never: a VM that ended with its node is not started again");
        var job = Vm("job");
        ((string?)job["status"]!["phase"]).Should().Be("Failed");
        Condition(job, "NodeLost", "status").Should().Be("False");
        Condition(job, "NodeLost", "reason").Should().Be("NodeReturned");

        await Run("patch", "mvm", "job", "--type=merge", "-p", """{"spec":{"state":"Stopped"}}""");
        await Run("patch", "mvm", "job", "--type=merge", "-p", """{"spec":{"state":"Running"}}""");
        await PhaseAsync("job", "Running", "node-1");
        after.Calls.Should().Contain("Start job", "a new start request (new generation) starts it");
    }
}

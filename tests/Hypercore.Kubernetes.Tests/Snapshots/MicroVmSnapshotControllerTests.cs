using System.Text.Json.Nodes;
using Hypercore.Drivers;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.MicroVms;
using Hypercore.Snapshots;
using Hypercore.Store.Kubernetes;
using Hypercore.Store.Kubernetes.Snapshots;
using Hypercore.Store.Kubernetes.Client;
using Microsoft.Extensions.Options;

namespace Hypercore.Kubernetes.Tests.Snapshots;

/// <summary>
/// MicroVMSnapshot resources applied with the real kubectl to the fake API server, reconciled by two nodes'
/// controllers (each with its own Kubernetes store and snapshot directory, and a driver whose snapshots are real
/// files): only the node that runs the MicroVM takes the snapshot, status and kubectl show it, bad input shows its
/// reason, deleting the resource deletes the files.
/// </summary>
[NonParallelizable]
public sealed class MicroVmSnapshotControllerTests
{
    private const string Ns = "default";
    private FakeCluster _cluster = null!;
    private KubectlRunner _kubectl = null!;
    private readonly Dictionary<string, NodeUnderTest> _nodes = [];

    [SetUp]
    public async Task SetUp()
    {
        Assert.That(KubectlRunner.Available, $"{KubectlRunner.Binary} is required (Debian package kubernetes-client)");
        _cluster = await FakeCluster.StartAsync();
        _kubectl = _cluster.Kubectl();
        foreach (var node in new[] { "node-1", "node-2" })
        {
            _nodes[node] = await NodeUnderTest.StartAsync(_cluster, node);
        }
    }

    [TearDown]
    public async Task TearDown()
    {
        try
        {
            foreach (var node in _nodes.Values)
            {
                await node.DisposeAsync();
            }
        }
        finally
        {
            _nodes.Clear();
            await _cluster.DisposeAsync();
        }
    }

    [Test]
    public async Task Apply_SnapshotOfRunningVm_ItsNodeTakesItAndKubectlShowsReady()
    {
        var vm = await RunningVmAsync("node-2", "web1");

        await ApplyAsync("snap1", "web1");
        var ready = await WaitForPhaseAsync("snap1", "Ready");

        var status = ready["status"]!;
        ((string?)status["node"]).Should().Be("node-2");
        ((string?)ready["metadata"]!["labels"]![MicroVmResource.NodeLabel]).Should().Be("node-2", "the node labels what it took, so only it watches it");
        ready["metadata"]!["finalizers"]!.AsArray().Select(f => (string?)f).Should().Contain(MicroVmSnapshotResource.Finalizer);
        ((string?)status["sourceUid"]).Should().Be(vm.Uid);
        ((long)status["sizeBytes"]!).Should().BePositive();
        ((string?)status["size"]).Should().Be(MicroVmSnapshotResource.FormatSize((long)status["sizeBytes"]!));
        ((string?)status["createdAt"]).Should().NotBeNullOrEmpty();
        ((string?)status["provider"]).Should().Be("qemu");
        Ready(ready).Should().Be(("True", MicroVmSnapshotResource.ReasonTaken));

        var node2 = _nodes["node-2"];
        var manifest = node2.Manager.Store.Read("snap1");
        manifest.Should().NotBeNull("the files are on the VM's node");
        manifest!.Owner.Should().Be((string)ready["metadata"]!["uid"]!);
        manifest.SourceId.Should().Be("web1");
        ((string?)status["path"]).Should().Be(node2.Manager.Store.PathOf("snap1"));
        File.ReadAllText(Path.Combine(node2.Manager.Store.PathOf("snap1"), "memory.state")).Should().Contain(vm.Uid);
        node2.Driver.Calls.Should().Equal("Snapshot web1");
        _nodes["node-1"].Driver.Calls.Should().BeEmpty("only the node that runs the MicroVM acts");
        _nodes["node-1"].Manager.Store.List().Should().BeEmpty();

        var web1 = _cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, Ns, "web1")!;
        ((string?)web1["status"]!["lastSnapshot"]).Should().Be("snap1", "the MicroVM's status names its latest snapshot");
        MicroVmResource.ParseTime((string)web1["status"]!["lastSnapshotTime"]!).Should().Be(manifest.CreatedAt);

        var table = KubectlTable.Parse((await RunAsync("get", "mvmsnap")).Stdout);
        table.Header.Should().Equal("NAME", "MICROVM", "PHASE", "NODE", "SIZE", "CREATED", "REASON", "AGE");
        table.Row("snap1")[..5].Should().Equal("snap1", "web1", "Ready", "node-2", (string)status["size"]!);
        table.Row("snap1")[6].Should().Be(MicroVmSnapshotResource.ReasonTaken);

        // Taken once: later passes (resyncs, the other node) change nothing and take nothing again.
        await _nodes["node-2"].Controller.ReconcileAsync(Ns, "snap1", CancellationToken.None);
        await _nodes["node-1"].Controller.ReconcileAsync(Ns, "snap1", CancellationToken.None);
        node2.Driver.Calls.Should().HaveCount(1);
        ((string?)_cluster.Server.Get(MicroVmResource.Group, MicroVmSnapshotResource.Plural, Ns, "snap1")!["metadata"]!["resourceVersion"])
            .Should().Be((string?)ready["metadata"]!["resourceVersion"]);
    }

    [Test]
    public async Task Delete_ReadySnapshot_DeletesItsFilesThenTheResource()
    {
        await RunningVmAsync("node-1", "web1");
        await ApplyAsync("snap1", "web1");
        await WaitForPhaseAsync("snap1", "Ready");
        var dir = _nodes["node-1"].Manager.Store.PathOf("snap1");
        Directory.Exists(dir).Should().BeTrue();

        var deleted = await _kubectl.RunAsync("delete", "mvmsnap", "snap1", "--wait=false");
        deleted.ExitCode.Should().Be(0, deleted.ToString());

        await Eventually.UntilAsync(() => _cluster.Server.Get(MicroVmResource.Group, MicroVmSnapshotResource.Plural, Ns, "snap1") is null,
            "the resource to be gone once its files are");
        Directory.Exists(dir).Should().BeFalse("deleting the MicroVMSnapshot deletes the snapshot's files");
        Directory.EnumerateFileSystemEntries(_nodes["node-1"].Manager.Store.Root).Should().BeEmpty("no staging or half-deleted directory is left");
    }

    [Test]
    public async Task Apply_UnknownMicroVm_FailedWithMicroVmNotFound()
    {
        await ApplyAsync("snap1", "nosuchvm");

        var failed = await WaitForPhaseAsync("snap1", "Failed");
        var (status, reason) = Ready(failed);
        status.Should().Be("False");
        reason.Should().Be(MicroVmSnapshotResource.ReasonMicroVmNotFound);
        Message(failed).Should().Contain("\"nosuchvm\"").And.Contain("namespace \"default\"");
        failed["metadata"]!["labels"]?[MicroVmResource.NodeLabel].Should().BeNull("no node runs that MicroVM, so none claims it");
        _nodes.Values.SelectMany(n => n.Driver.Calls).Should().BeEmpty();

        var deleted = await _kubectl.RunAsync("delete", "mvmsnap", "snap1");
        deleted.ExitCode.Should().Be(0, "an unclaimed snapshot holds no finalizer: " + deleted);
    }

    [Test]
    public async Task Apply_StoppedMicroVm_FailedWithMicroVmNotRunning_AndNoFiles()
    {
        await VmAsync("node-1", "web1", Phase.Stopped);

        await ApplyAsync("snap1", "web1");

        var failed = await WaitForPhaseAsync("snap1", "Failed");
        Ready(failed).Reason.Should().Be(MicroVmSnapshotResource.ReasonMicroVmNotRunning);
        Message(failed).Should().Contain("Stopped").And.Contain("Running or Paused");
        ((string?)failed["status"]!["node"]).Should().Be("node-1");
        _nodes["node-1"].Manager.Store.List().Should().BeEmpty();

        (await _kubectl.RunAsync("delete", "mvmsnap", "snap1")).ExitCode.Should().Be(0);
        _cluster.Server.Get(MicroVmResource.Group, MicroVmSnapshotResource.Plural, Ns, "snap1").Should().BeNull();
    }

    [Test]
    public async Task Apply_VmStillProvisioning_PendingUntilItRuns_ThenReady()
    {
        var vm = await VmAsync("node-1", "web1", Phase.Provisioning);

        await ApplyAsync("snap1", "web1");
        var pending = await WaitForPhaseAsync("snap1", "Pending");
        Ready(pending).Reason.Should().Be(MicroVmSnapshotResource.ReasonWaitingForMicroVm);
        Message(pending).Should().Contain("Provisioning");
        _nodes["node-1"].Driver.Calls.Should().BeEmpty();

        var store = _nodes["node-1"].Store;
        vm = (await store.GetAsync(vm.Key))!;
        await store.UpdateStatusAsync(vm.Key, vm.Status with { Phase = Phase.Running }, vm.ResourceVersion);
        _nodes["node-1"].Driver.Live[vm.Uid] = true;

        await WaitForPhaseAsync("snap1", "Ready");
        _nodes["node-1"].Driver.Calls.Should().Equal("Snapshot web1");
    }

    [Test]
    public async Task Apply_NameOfASnapshotTakenThroughTheApi_FailedWithNameTaken_AndDeleteKeepsTheOtherSnapshot()
    {
        var vm = await RunningVmAsync("node-1", "web1");
        var viaApi = await _nodes["node-1"].Manager.CreateAsync(vm, "snap1", CancellationToken.None);

        await ApplyAsync("snap1", "web1");

        var failed = await WaitForPhaseAsync("snap1", "Failed");
        Ready(failed).Reason.Should().Be(MicroVmSnapshotResource.ReasonNameTaken);
        Message(failed).Should().Contain("taken through the API").And.Contain("another name");

        (await _kubectl.RunAsync("delete", "mvmsnap", "snap1")).ExitCode.Should().Be(0);
        _nodes["node-1"].Manager.Store.Read("snap1").Should().BeEquivalentTo(viaApi, "a snapshot the resource does not own is never deleted with it");
    }

    [Test]
    public async Task Delete_SnapshotOwnedByAResource_ThroughTheApi_IsRefusedWithHowToDeleteIt()
    {
        await RunningVmAsync("node-1", "web1");
        await ApplyAsync("snap1", "web1");
        await WaitForPhaseAsync("snap1", "Ready");
        var manifest = _nodes["node-1"].Manager.Store.Read("snap1")!;

        var act = () => _nodes["node-1"].Manager.Delete(manifest);

        act.Should().Throw<Hypercore.Operations.FailedPreconditionException>().WithMessage("*kubectl delete microvmsnapshot snap1 -n default*");
        _nodes["node-1"].Manager.Store.Exists("snap1").Should().BeTrue();
    }

    [Test]
    public async Task Ready_FilesRemovedOutsideKubernetes_FailedWithFilesMissing()
    {
        await RunningVmAsync("node-1", "web1");
        await ApplyAsync("snap1", "web1");
        await WaitForPhaseAsync("snap1", "Ready");

        _nodes["node-1"].Manager.Store.Delete("snap1").Should().BeTrue();
        await _nodes["node-1"].Controller.ReconcileAsync(Ns, "snap1", CancellationToken.None); // what the next resync does

        var failed = await WaitForPhaseAsync("snap1", "Failed");
        Ready(failed).Reason.Should().Be(MicroVmSnapshotResource.ReasonFilesMissing);
        _nodes["node-1"].Driver.Calls.Should().HaveCount(1, "a snapshot is never silently taken again");
    }

    [Test]
    public async Task Kubectl_ChangingTheMicroVmOfASnapshot_IsRejectedByTheCrd()
    {
        await ApplyAsync("snap1", "nosuchvm");
        await WaitForPhaseAsync("snap1", "Failed");

        var patched = await _kubectl.RunAsync("patch", "mvmsnap", "snap1", "--type=merge", "-p", "{\"spec\":{\"microVMName\":\"other\"}}");

        patched.ExitCode.Should().NotBe(0);
        patched.Stderr.Should().Contain("spec.microVMName cannot change");
    }

    [Test]
    public async Task Kubectl_SnapshotWithoutMicroVmName_IsRejectedByTheCrd()
    {
        var file = Path.Combine(_cluster.Directory.FullName, "bad.yaml");
        await File.WriteAllTextAsync(file, "apiVersion: hypercore.vistara.dev/v1alpha1\nkind: MicroVMSnapshot\nmetadata:\n  name: bad\nspec: {}\n");

        var applied = await _kubectl.RunAsync("apply", "-f", file);

        applied.ExitCode.Should().NotBe(0);
        applied.Stderr.Should().Contain("microVMName");
    }

    [Test]
    public async Task Watches_AreScopedToTheNodeAndToUnclaimedSnapshots()
    {
        await RunningVmAsync("node-1", "web1");
        await ApplyAsync("snap1", "web1");
        await WaitForPhaseAsync("snap1", "Ready");

        var node2 = _cluster.Server.Requests.Where(r => r.Token == "node-2" && r.Resource == MicroVmSnapshotResource.Plural).ToList();
        node2.Where(r => r.Verb is "list" or "watch").Select(r => r.LabelSelector).Distinct()
            .Should().BeEquivalentTo([$"{MicroVmResource.NodeLabel}=node-2", $"!{MicroVmResource.NodeLabel}"], "a node never lists or watches other nodes' snapshots");
        node2.Where(r => r.Verb == "update").Should().BeEmpty("node-2 does not run web1, so it never writes its snapshot");
    }

    private async Task<MicroVm> RunningVmAsync(string node, string id)
    {
        var vm = await VmAsync(node, id, Phase.Running);
        _nodes[node].Driver.Live[vm.Uid] = true;
        return vm;
    }

    private async Task<MicroVm> VmAsync(string node, string id, Phase phase)
    {
        var store = _nodes[node].Store;
        var vm = await store.CreateAsync(new MicroVmSpec { Id = id, Provider = "qemu", Kernel = new KernelSpec { Image = "/k" } });
        vm = await store.ClaimAsync(vm.Key);
        return await store.UpdateStatusAsync(vm.Key, new MicroVmStatus { Phase = phase, Node = node }, vm.ResourceVersion);
    }

    private async Task ApplyAsync(string name, string microVm)
    {
        var file = Path.Combine(_cluster.Directory.FullName, $"{name}.yaml");
        await File.WriteAllTextAsync(file,
            $"apiVersion: hypercore.vistara.dev/v1alpha1\nkind: MicroVMSnapshot\nmetadata:\n  name: {name}\n  namespace: {Ns}\nspec:\n  microVMName: {microVm}\n");
        var applied = await RunAsync("apply", "-f", file);
        applied.Stdout.Should().Contain($"microvmsnapshot.hypercore.vistara.dev/{name} created");
    }

    private async Task<KubectlResult> RunAsync(params string[] args)
    {
        var r = await _kubectl.RunAsync(args);
        r.ExitCode.Should().Be(0, $"kubectl {string.Join(' ', args)}: {r}");
        return r;
    }

    private async Task<JsonObject> WaitForPhaseAsync(string name, string phase)
    {
        JsonObject? last = null;
        await Eventually.UntilAsync(
            () => (string?)(last = _cluster.Server.Get(MicroVmResource.Group, MicroVmSnapshotResource.Plural, Ns, name))?["status"]?["phase"] == phase,
            $"{name}: phase {phase}");
        return last!;
    }

    private static (string Status, string Reason) Ready(JsonObject obj)
    {
        var c = obj["status"]!["conditions"]!.AsArray().OfType<JsonObject>().Single(c => (string?)c["type"] == "Ready");
        return ((string)c["status"]!, (string)c["reason"]!);
    }

    private static string Message(JsonObject obj) =>
        (string)obj["status"]!["conditions"]!.AsArray().OfType<JsonObject>().Single(c => (string?)c["type"] == "Ready")["message"]!;

    /// <summary>One node: its store, snapshot directory, driver and controller, as the daemon wires them.</summary>
    private sealed class NodeUnderTest : IAsyncDisposable
    {
        private readonly DirectoryInfo _dir;
        private readonly Hypercore.Store.Kubernetes.Client.KubernetesApiClient _client;

        private NodeUnderTest(DirectoryInfo dir, Hypercore.Store.Kubernetes.Client.KubernetesApiClient client, KubernetesMicroVmStore store, FakeSnapshotDriver driver, SnapshotManager manager, MicroVmSnapshotController controller)
        {
            _dir = dir;
            _client = client;
            Store = store;
            Driver = driver;
            Manager = manager;
            Controller = controller;
        }

        public KubernetesMicroVmStore Store { get; }

        public FakeSnapshotDriver Driver { get; }

        public SnapshotManager Manager { get; }

        public MicroVmSnapshotController Controller { get; }

        public static async Task<NodeUnderTest> StartAsync(FakeCluster cluster, string node)
        {
            var dir = Directory.CreateTempSubdirectory($"hc-snapcrd-{node}-");
            var client = new KubernetesApiClient(KubernetesApiConfig.FromKubeconfig(cluster.KubeconfigFor(node)));
            var store = cluster.NewStore(node);
            var driver = new FakeSnapshotDriver("qemu");
            var manager = new SnapshotManager(new SnapshotStore(Path.Combine(dir.FullName, "snapshots")), new DriverRegistry([driver], "qemu"),
                TimeProvider.System, new TestLogger<SnapshotManager>(), store);
            var controller = new MicroVmSnapshotController(client, store, manager, Options.Create(FakeCluster.TestOptions(node)),
                Options.Create(new MicroVmSnapshotOptions { RetryInterval = TimeSpan.FromMilliseconds(200), ResyncInterval = TimeSpan.FromSeconds(30) }),
                TimeProvider.System, new TestLogger<MicroVmSnapshotController>());
            await controller.StartAsync(CancellationToken.None);
            return new NodeUnderTest(dir, client, store, driver, manager, controller);
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                await Controller.StopAsync(CancellationToken.None);
            }
            finally
            {
                Controller.Dispose();
                _client.Dispose();
                _dir.Delete(recursive: true);
            }
        }
    }
}

using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Grpc.Net.Client;
using Hypercore.Contracts.VmApi;
using Hypercore.Store.Kubernetes;
using Hypercore.Store.Kubernetes.NodeLifecycle;

namespace Hypercore.Kubernetes.Tests.EndToEnd;

/// <summary>
/// Kubernetes issue 13, placement end to end: a MicroVM applied with kubectl names no node; the real vistarad holding
/// the node-lifecycle Lease (either of two) makes its reservation pod; the test plays kube-scheduler and binds the pod
/// to node-2; node-2's real vistarad boots the guest with real QEMU (TCG) to Running, and node-1's never sees it.
/// </summary>
public sealed partial class DaemonOnKubernetesEndToEndTests
{
    private async Task NodeReadyAsync(string name)
    {
        var path = Path.Combine(Cluster.Directory.FullName, name + "-node.yaml");
        await File.WriteAllTextAsync(path, $"apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    hypercore.vistara.dev/kvm: \"true\"\n");
        await Run("apply", "--validate=false", "-f", path); // the test server has no OpenAPI for core/v1
        await Run("patch", "node", name, "--subresource=status", "--type=merge", "-p",
            """{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}""");
    }

    [Test]
    public async Task Kubectl_UnplacedMicroVm_ReservationPodBoundToNode2_Node2BootsItWithQemu_Node1NeverSeesIt()
    {
        await NodeReadyAsync("node-1");
        await NodeReadyAsync("node-2");
        var one = StartDaemonFor("node-1", "--node-lifecycle-interval", "1s");
        var two = StartDaemonFor("node-2", "--node-lifecycle-interval", "1s");
        await one.WaitReadyAsync(Patience);
        var (grpcTwo, _) = await two.WaitReadyAsync(Patience);

        // The sample without its node label: nothing says where it runs.
        var text = await File.ReadAllTextAsync(WriteSample("placed"));
        text = text.Replace("  labels:\n    hypercore.vistara.dev/node: node-1\n", "", StringComparison.Ordinal);
        text.Should().NotContain("hypercore.vistara.dev/node").And.NotContain("nodeName");
        text += "  placement:\n    nodeSelector:\n      disk: ssd\n";
        var path = Path.Combine(Cluster.Directory.FullName, "placed-unplaced.yaml");
        await File.WriteAllTextAsync(path, text);
        await Run("apply", "-f", path);

        JsonObject? pod = null;
        await UntilAsync(() => (pod = Cluster.Server.Get("", "pods", Namespace, PlacementController.PodName("placed"))) is not null,
            "the Lease holder to create the reservation pod", one);
        ((string?)pod!["spec"]!["nodeSelector"]!["disk"]).Should().Be("ssd");
        ((string?)pod["spec"]!["containers"]![0]!["resources"]!["requests"]!["memory"]).Should().Be("192Mi", "128 MiB guest + 64 MiB overhead");
        Cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, Namespace, "placed")!["status"]?["phase"].Should().BeNull("no node has it yet");

        // kube-scheduler's part.
        using (var http = new HttpClient { BaseAddress = Cluster.Server.BaseAddress })
        {
            var binding = """{"apiVersion":"v1","kind":"Binding","metadata":{"name":"mvm-placed"},"target":{"apiVersion":"v1","kind":"Node","name":"node-2"}}""";
            using var response = await http.PostAsync($"api/v1/namespaces/{Namespace}/pods/mvm-placed/binding",
                new StringContent(binding, Encoding.UTF8, new MediaTypeHeaderValue("application/json")));
            response.IsSuccessStatusCode.Should().BeTrue(await response.Content.ReadAsStringAsync());
        }

        var running = await WaitForPhaseAsync(two, "placed", "Running");
        var uid = (string)running["metadata"]!["uid"]!;
        var pid = (int)running["status"]!["pid"]!;
        ((string?)running["spec"]!["nodeName"]).Should().Be("node-2");
        ((string?)running["metadata"]!["labels"]![MicroVmResource.NodeLabel]).Should().Be("node-2");
        ((string?)running["status"]!["node"]).Should().Be("node-2", "node-2's daemon reconciles it");
        var vmDir = Path.Combine(_dir!.FullName, "node-2", "run", "qemu", uid);
        ProcessesMentioning(vmDir).Should().Equal([pid], "node-2 runs the one QEMU of this VM");
        var console = (string)running["status"]!["consoleLogPath"]!;
        await UntilAsync(() => File.Exists(console) && File.ReadAllText(console).Contains("HYPERCORE-GUEST-READY", StringComparison.Ordinal),
            $"the guest's HYPERCORE-GUEST-READY line in {console}", two);

        // node-1 never touched it: its watch never carried it, it has nothing on disk for it, its API does not know it.
        Directory.Exists(Path.Combine(_dir.FullName, "node-1", "run", "qemu", uid)).Should().BeFalse();
        ProcessesMentioning(Path.Combine(_dir.FullName, "node-1", "run")).Should().BeEmpty("node-1 started no hypervisor");
        Cluster.Server.DeliveredWatchEvents.Where(e => e.Token == "node-1" && e.Resource == MicroVmResource.Plural).Select(e => e.Name)
            .Should().NotContain("placed");
        one.Stderr.Should().NotContain($"{Namespace}/placed: phase");

        // The placement on the wire (issue 13, status 140-141 and spec 110) through node-2's gRPC.
        using (var channel = GrpcChannel.ForAddress(grpcTwo))
        {
            var vm = (await new VMService.VMServiceClient(channel).GetAsync(new GetMicroVMRequest { Id = "placed", Namespace = Namespace })).Microvm;
            vm.Status.ScheduledNode.Should().Be("node-2");
            vm.Status.NodeLost.Should().BeFalse();
            vm.Spec.Placement.NodeSelector["disk"].Should().Be("ssd");
        }

        await Run("delete", "mvm", "placed", "--wait=false");
        await UntilAsync(() => Cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, Namespace, "placed") is null,
            "node-2's daemon to delete the guest and remove the finalizer", two);
        IsAlive(pid).Should().BeFalse();
        Directory.Exists(vmDir).Should().BeFalse();
    }

    [Test]
    public async Task NodeLost_RestartAlwaysVm_MovesToNode2AndBootsThereWithQemu_KeepingItsUid_Node1StopsItsCopy()
    {
        await NodeReadyAsync("node-1");
        await NodeReadyAsync("node-2");
        var one = StartDaemonFor("node-1", "--node-lifecycle-interval", "1s");
        var two = StartDaemonFor("node-2", "--node-lifecycle-interval", "1s");
        await one.WaitReadyAsync(Patience);
        await two.WaitReadyAsync(Patience);
        await Run("apply", "-f", WriteSample("mover")); // node-1's, restartPolicy Always, kernel and initrd only
        var first = await WaitForPhaseAsync(one, "mover", "Running");
        var uid = (string)first["metadata"]!["uid"]!;
        var firstPid = (int)first["status"]!["pid"]!;
        var firstDir = Path.Combine(_dir!.FullName, "node-1", "run", "qemu", uid);
        ProcessesMentioning(firstDir).Should().Equal([firstPid]);

        // node-1's kubelet stops reporting (NotReady for years); its vistarad still reaches the API server.
        await Run("patch", "node", "node-1", "--subresource=status", "--type=merge", "-p",
            """{"status":{"conditions":[{"type":"Ready","status":"False","reason":"NodeStatusUnknown","lastTransitionTime":"2020-01-01T00:00:00Z"}]}}""");

        await UntilAsync(() => Cluster.Server.Get("", "pods", Namespace, PlacementController.PodName("mover")) is not null,
            "the Lease holder to move the MicroVM off node-1 and make it a reservation pod", one);
        // The folder goes after QEMU has exited (the driver removes it once the process is gone), so wait for both.
        await UntilAsync(() => !IsAlive(firstPid) && !Directory.Exists(firstDir),
            "node-1's daemon to stop its copy of the MicroVM that moved away and remove what it had for it", one);
        using (var http = new HttpClient { BaseAddress = Cluster.Server.BaseAddress })
        {
            var binding = """{"apiVersion":"v1","kind":"Binding","metadata":{"name":"mvm-mover"},"target":{"apiVersion":"v1","kind":"Node","name":"node-2"}}""";
            using var response = await http.PostAsync($"api/v1/namespaces/{Namespace}/pods/mvm-mover/binding",
                new StringContent(binding, Encoding.UTF8, new MediaTypeHeaderValue("application/json")));
            response.IsSuccessStatusCode.Should().BeTrue(await response.Content.ReadAsStringAsync());
        }

        JsonObject? moved = null;
        await UntilAsync(() => (moved = Cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, Namespace, "mover")) is { } o &&
                               (string?)o["status"]?["phase"] == "Running" && (string?)o["status"]?["node"] == "node-2" && (int?)o["status"]?["pid"] > 0,
            "node-2 to boot the moved MicroVM", two);
        ((string?)moved!["metadata"]!["uid"]).Should().Be(uid, "the same MicroVM moved");
        ((string?)moved["spec"]!["nodeName"]).Should().Be("node-2");
        var secondPid = (int)moved["status"]!["pid"]!;
        var secondDir = Path.Combine(_dir.FullName, "node-2", "run", "qemu", uid);
        ProcessesMentioning(secondDir).Should().Equal([secondPid]);
        var console = (string)moved["status"]!["consoleLogPath"]!;
        await UntilAsync(() => File.Exists(console) && File.ReadAllText(console).Contains("HYPERCORE-GUEST-READY", StringComparison.Ordinal),
            $"the guest's HYPERCORE-GUEST-READY line in {console}", two);
        var conditions = moved["status"]!["conditions"]!.AsArray().OfType<JsonObject>().ToList();
        conditions.Should().Contain(c => (string?)c["type"] == "NodeLost" && (string?)c["status"] == "False" && (string?)c["reason"] == "Rescheduled");
        Cluster.Server.List("", "events").Should().Contain(e => (string?)e["reason"] == "Rescheduled" && (string?)e["involvedObject"]!["name"] == "mover");
        ProcessesMentioning(Path.Combine(_dir.FullName, "node-1", "run")).Should().BeEmpty("one copy runs, on node-2");

        await Run("delete", "mvm", "mover", "--wait=false");
        await UntilAsync(() => Cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, Namespace, "mover") is null,
            "node-2's daemon to delete the guest and remove the finalizer", two);
        IsAlive(secondPid).Should().BeFalse();
    }
}

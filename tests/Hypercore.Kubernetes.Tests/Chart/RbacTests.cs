using Hypercore.Store.Kubernetes.NodeLifecycle;
using Microsoft.Extensions.Options;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.Kubernetes.TestServer;
using Hypercore.MicroVms;
using Hypercore.Store;

namespace Hypercore.Kubernetes.Tests.Chart;

/// <summary>
/// Least privilege, checked from both ends: the permissions the store needs are derived from the requests it sends
/// to the fake API server while exercising every store operation (and cross-checked against the client calls in its
/// source), and must equal the chart's ClusterRole rules and the plain manifest's.
/// </summary>
public sealed partial class RbacTests
{
    [GeneratedRegex(@"_client\.(?:CustomObjects|CoreV1|CoordinationV1)\.(\w+?)(?:WithHttpMessages)?Async\(")]
    private static partial Regex ClientCall();

    [Test]
    public async Task ChartRules_EqualWhatTheStoreCalls_AndThePlainManifest()
    {
        var used = await UsedPermissionsAsync();

        var chart = Permissions(ChartRules());
        var plain = Permissions(PlainRules());

        used.Should().BeEquivalentTo(FromSource(), "the workload exercised every API call in the store's source");
        chart.Should().BeEquivalentTo(used, "the chart grants exactly what the store calls");
        plain.Should().BeEquivalentTo(chart, "deploy/rbac.yaml grants the same as the chart");
    }

    /// <summary>Runs every store operation (including watch, status, finalizer, deletion and a repeated event) and records the requests.</summary>
    private static async Task<HashSet<string>> UsedPermissionsAsync()
    {
        await using var cluster = await FakeCluster.StartAsync();
        var store = cluster.NewStore("node-1");
        await using (var watch = new WatchRecorder(store))
        {
            var spec = new MicroVmSpec { Id = "vm-1", Kernel = new KernelSpec { Image = "/k" } };
            var vm = await store.CreateAsync(spec);
            await watch.WaitForAsync(e => e.Type == StoreEventType.Added, "Added");
            await store.GetAsync(vm.Key);
            await store.GetByUidAsync(vm.Uid);
            await store.ListAsync("default");
            vm = await store.UpdateSpecAsync(vm.Key, spec with { Vcpu = 2 }, vm.ResourceVersion);
            vm = await store.ClaimAsync(vm.Key);
            var crash = new MicroVmStatus
            {
                Phase = Phase.Failed,
                Conditions = [new Condition(Conditions.Ready, ConditionStatus.False, "Crashed", "died", DateTimeOffset.UnixEpoch, 2)],
            };
            vm = await store.UpdateStatusAsync(vm.Key, crash, vm.ResourceVersion);
            vm = await store.UpdateStatusAsync(vm.Key, new MicroVmStatus { Phase = Phase.Provisioning }, vm.ResourceVersion);
            vm = await store.UpdateStatusAsync(vm.Key, crash, vm.ResourceVersion); // same Event again: patched, not created
            await store.MarkForDeletionAsync(vm.Key);
            await store.RemoveAsync(vm.Key);
            await watch.WaitForAsync(e => e.Type == StoreEventType.Deleted, "Deleted");
        }

        // Kubernetes issue 13: the node lifecycle controller's round (Lease create, then renew; nodes; lost node's MicroVMs).
        var lifecycleOptions = new NodeLifecycleOptions { LeaseNamespace = "default" };
        var node = Path.Combine(cluster.Directory.FullName, "node.yaml");
        await File.WriteAllTextAsync(node, "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n");
        var applied = await cluster.Kubectl().RunAsync("apply", "--validate=false", "-f", node); // the server has no OpenAPI for core/v1
        applied.ExitCode.Should().Be(0, applied.ToString());
        using (var client = new Hypercore.Store.Kubernetes.Client.KubernetesApiClient(Hypercore.Store.Kubernetes.Client.KubernetesApiConfig.FromKubeconfig(cluster.KubeconfigFor("node-1"))))
        {
            var lost = await cluster.NewStore("node-gone").CreateAsync(new MicroVmSpec { Id = "vm-lost", Kernel = new KernelSpec { Image = "/k" }, RestartPolicy = RestartPolicy.Never });
            await cluster.NewStore("node-gone").ClaimAsync(lost.Key);
            var moved = await cluster.NewStore("node-gone").CreateAsync(new MicroVmSpec { Id = "vm-moved", Kernel = new KernelSpec { Image = "/k" } });
            await cluster.NewStore("node-gone").ClaimAsync(moved.Key);
            var controller = new NodeLifecycleController(client, Options.Create(lifecycleOptions), Options.Create(FakeCluster.TestOptions("node-1")),
                TimeProvider.System, new TestLogger<NodeLifecycleController>(), new PlacementOptions());
            var unplaced = Path.Combine(cluster.Directory.FullName, "unplaced.yaml");
            await File.WriteAllTextAsync(unplaced, "apiVersion: hypercore.vistara.dev/v1alpha1\nkind: MicroVM\nmetadata:\n  name: unplaced\n  namespace: default\nspec:\n  kernel: { image: /k }\n");
            (await cluster.Kubectl().RunAsync("apply", "-f", unplaced)).ExitCode.Should().Be(0);
            await controller.RunOnceAsync(CancellationToken.None); // creates the reservation pod
            await controller.RunOnceAsync(CancellationToken.None); // reads it
            controller.Released.Should().Be(1, "the workload must reach the status and finalizer writes");
            controller.Rescheduled.Should().Be(1, "and the move of a restartPolicy Always MicroVM (its reservation pod deleted)");
        }

        // snapshots (issue 14): the MicroVMSnapshot controller claims, takes, reports and deletes one snapshot.
        await SnapshotWorkloadAsync(cluster);

        // Only the daemon's requests (its kubeconfig carries the node name as token); kubectl only set the scene.
        return cluster.Server.Requests.Where(r => r.Token.StartsWith("node-", StringComparison.Ordinal)).Select(r => Permission(r.Group, r.Subresource.Length > 0 ? $"{r.Resource}/{r.Subresource}" : r.Resource, r.Verb)).ToHashSet();
    }

    /// <summary>The permissions implied by the KubernetesClient calls in MicroVmApi.cs, mapped by hand-checked name.</summary>
    private static HashSet<string> FromSource()
    {
        var map = new Dictionary<string, string>
        {
            ["GetNamespacedCustomObject"] = Permission("hypercore.vistara.dev", "microvms", "get"),
            ["ListNamespacedCustomObject"] = Permission("hypercore.vistara.dev", "microvms", "list"),
            ["ListCustomObjectForAllNamespaces"] = Permission("hypercore.vistara.dev", "microvms", "list"),
            ["WatchListNamespacedCustomObject"] = Permission("hypercore.vistara.dev", "microvms", "watch"),
            ["WatchListCustomObjectForAllNamespaces"] = Permission("hypercore.vistara.dev", "microvms", "watch"),
            ["CreateNamespacedCustomObject"] = Permission("hypercore.vistara.dev", "microvms", "create"),
            ["ReplaceNamespacedCustomObject"] = Permission("hypercore.vistara.dev", "microvms", "update"),
            ["ReplaceNamespacedCustomObjectStatus"] = Permission("hypercore.vistara.dev", "microvms/status", "update"),
            ["DeleteNamespacedCustomObject"] = Permission("hypercore.vistara.dev", "microvms", "delete"),
            ["CreateNamespacedEvent"] = Permission("", "events", "create"),
            ["PatchNamespacedEvent"] = Permission("", "events", "patch"),
        };
        map["ListNode"] = Permission("", "nodes", "list");
        map["ReadNamespacedPod"] = Permission("", "pods", "get");
        map["CreateNamespacedPod"] = Permission("", "pods", "create");
        map["DeleteNamespacedPod"] = Permission("", "pods", "delete");
        map["ReadNamespacedLease"] = Permission("coordination.k8s.io", "leases", "get");
        map["CreateNamespacedLease"] = Permission("coordination.k8s.io", "leases", "create");
        map["ReplaceNamespacedLease"] = Permission("coordination.k8s.io", "leases", "update");
        var source = File.ReadAllText(Repo.Path_("src", "Hypercore.Store.Kubernetes", "MicroVmApi.cs")) +
                     File.ReadAllText(Repo.Path_("src", "Hypercore.Store.Kubernetes", "NodeLifecycle", "NodeLifecycleController.cs")) +
                     File.ReadAllText(Repo.Path_("src", "Hypercore.Store.Kubernetes", "NodeLifecycle", "LeaseElector.cs")) +
                     File.ReadAllText(Repo.Path_("src", "Hypercore.Store.Kubernetes", "NodeLifecycle", "PlacementController.cs"));
        var calls = ClientCall().Matches(source).Select(m => m.Groups[1].Value).Distinct().ToList();
        calls.Should().NotBeEmpty();
        calls.Where(c => !map.ContainsKey(c)).Should().BeEmpty("every API call must be mapped to its RBAC verb here");

        // snapshots (issue 14): the same client calls on microvmsnapshots (and one GET of the named MicroVM).
        var snapshotMap = new Dictionary<string, string[]>
        {
            ["GetNamespacedCustomObject"] = [Permission("hypercore.vistara.dev", "microvmsnapshots", "get"), Permission("hypercore.vistara.dev", "microvms", "get")],
            ["ListNamespacedCustomObject"] = [Permission("hypercore.vistara.dev", "microvmsnapshots", "list")],
            ["ListCustomObjectForAllNamespaces"] = [Permission("hypercore.vistara.dev", "microvmsnapshots", "list")],
            ["WatchListNamespacedCustomObject"] = [Permission("hypercore.vistara.dev", "microvmsnapshots", "watch")],
            ["WatchListCustomObjectForAllNamespaces"] = [Permission("hypercore.vistara.dev", "microvmsnapshots", "watch")],
            ["ReplaceNamespacedCustomObject"] = [Permission("hypercore.vistara.dev", "microvmsnapshots", "update")],
            ["ReplaceNamespacedCustomObjectStatus"] = [Permission("hypercore.vistara.dev", "microvmsnapshots/status", "update")],
        };
        var snapshotCalls = ClientCall().Matches(File.ReadAllText(Repo.Path_("src", "Hypercore.Store.Kubernetes", "Snapshots", "MicroVmSnapshotController.cs")))
            .Select(m => m.Groups[1].Value).Distinct().ToList();
        snapshotCalls.Should().NotBeEmpty();
        snapshotCalls.Where(c => !snapshotMap.ContainsKey(c)).Should().BeEmpty("every API call of the snapshot controller must be mapped here");

        // The list and watch calls come in namespaced and all-namespaces pairs; the workload uses one of each.
        return calls.Select(c => map[c]).Concat(snapshotCalls.SelectMany(c => snapshotMap[c])).ToHashSet();
    }

    /// <summary>snapshots (issue 14): one MicroVMSnapshot claimed, taken and deleted, one naming no MicroVM, on node-1.</summary>
    private static async Task SnapshotWorkloadAsync(FakeCluster cluster)
    {
        var dir = Directory.CreateTempSubdirectory("hc-snapcrd-rbac-");
        try
        {
            var store = cluster.NewStore("node-1");
            var driver = new FakeSnapshotDriver("qemu");
            var manager = new Hypercore.Snapshots.SnapshotManager(new Hypercore.Snapshots.SnapshotStore(dir.FullName), new Hypercore.Drivers.DriverRegistry([driver], "qemu"),
                TimeProvider.System, new TestLogger<Hypercore.Snapshots.SnapshotManager>());
            var vm = await store.CreateAsync(new MicroVmSpec { Id = "snapped", Provider = "qemu", Kernel = new KernelSpec { Image = "/k" } });
            vm = await store.ClaimAsync(vm.Key);
            vm = await store.UpdateStatusAsync(vm.Key, new MicroVmStatus { Phase = Phase.Running }, vm.ResourceVersion);
            driver.Live[vm.Uid] = true;
            using var client = new Hypercore.Store.Kubernetes.Client.KubernetesApiClient(Hypercore.Store.Kubernetes.Client.KubernetesApiConfig.FromKubeconfig(cluster.KubeconfigFor("node-1")));
            using var controller = new Hypercore.Store.Kubernetes.Snapshots.MicroVmSnapshotController(client, store, manager, Options.Create(FakeCluster.TestOptions("node-1")),
                Options.Create(new Hypercore.Store.Kubernetes.Snapshots.MicroVmSnapshotOptions { RetryInterval = TimeSpan.FromMilliseconds(200) }),
                TimeProvider.System, new TestLogger<Hypercore.Store.Kubernetes.Snapshots.MicroVmSnapshotController>());
            await controller.StartAsync(CancellationToken.None);
            var file = Path.Combine(cluster.Directory.FullName, "snapshots.yaml");
            await File.WriteAllTextAsync(file,
                "apiVersion: hypercore.vistara.dev/v1alpha1\nkind: MicroVMSnapshot\nmetadata:\n  name: snap\n  namespace: default\nspec:\n  microVMName: snapped\n---\n" +
                "apiVersion: hypercore.vistara.dev/v1alpha1\nkind: MicroVMSnapshot\nmetadata:\n  name: orphan\n  namespace: default\nspec:\n  microVMName: nosuchvm\n");
            (await cluster.Kubectl().RunAsync("apply", "-f", file)).ExitCode.Should().Be(0);
            string? Phase_(string name) => (string?)cluster.Server.Get("hypercore.vistara.dev", "microvmsnapshots", "default", name)?["status"]?["phase"];
            await Eventually.UntilAsync(() => Phase_("snap") == "Ready" && Phase_("orphan") == "Failed", "the snapshot Ready and the orphan Failed");
            (await cluster.Kubectl().RunAsync("delete", "mvmsnap", "snap")).ExitCode.Should().Be(0);
            await controller.StopAsync(CancellationToken.None);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static JsonArray ChartRules()
    {
        var text = File.ReadAllText(Repo.Path_("charts", "hypercore", "templates", "clusterrole.yaml"));
        var rules = text[text.IndexOf("rules:", StringComparison.Ordinal)..];
        rules = rules[..rules.IndexOf("{{-", StringComparison.Ordinal)];
        rules.Should().NotContain("{{", "the rules block is plain YAML");
        return Yaml.Parse(rules)!["rules"]!.AsArray();
    }

    private static JsonArray PlainRules() =>
        Yaml.ParseAll(File.ReadAllText(Repo.Path_("deploy", "rbac.yaml"))).OfType<JsonObject>()
            .Single(d => (string?)d["kind"] == "ClusterRole")["rules"]!.AsArray();

    private static HashSet<string> Permissions(JsonArray rules) =>
        rules.OfType<JsonObject>().SelectMany(rule =>
            from g in rule["apiGroups"]!.AsArray()
            from r in rule["resources"]!.AsArray()
            from v in rule["verbs"]!.AsArray()
            select Permission((string)g!, (string)r!, (string)v!)).ToHashSet();

    private static string Permission(string group, string resource, string verb) => $"{(group.Length == 0 ? "core" : group)}:{resource}:{verb}";
}

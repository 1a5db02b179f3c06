using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using Hypercore.Contracts.VmApi;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.Store.Kubernetes;
using Hypercore.Testing;

namespace Hypercore.Kubernetes.Tests.EndToEnd;

/// <summary>
/// Kubernetes issue 13, scale: two real daemons as two nodes of one (fake) API server. Each lists and watches only
/// the MicroVMs labelled with its node, and the gRPC Watch calls of a daemon are served from its shared informer
/// without a single extra watch against the API server. The test server records every request's label selector and
/// the client's token (one kubeconfig per node), and every event each watch stream carried.
/// </summary>
public sealed partial class DaemonOnKubernetesEndToEndTests
{
    private DaemonProcess StartDaemonFor(string node, params string[] more)
    {
        var daemon = DaemonProcess.Start(
            DaemonDll, ["run", "--store", "kubernetes", "--kubeconfig", Cluster.KubeconfigFor(node), "--node-name", node,
            "--state-dir", Path.Combine(_dir!.FullName, node), "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0",
            "--qemu-accel", "tcg", "--kernel-roots", GuestImage.Cache, .. more]);
        _daemons.Add(daemon);
        return daemon;
    }

    private async Task ApplyStoppedAsync(string name, string node)
    {
        var path = Path.Combine(Cluster.Directory.FullName, name + ".yaml");
        await File.WriteAllTextAsync(path, $"""
            apiVersion: hypercore.vistara.dev/v1alpha1
            kind: MicroVM
            metadata:
              name: {name}
              namespace: {Namespace}
              labels:
                hypercore.vistara.dev/node: {node}
            spec:
              provider: qemu
              kernel:
                image: {_image}/vmlinuz
              state: Stopped
            """);
        await Run("apply", "-f", path);
    }

    [Test]
    public async Task TwoDaemonsAsTwoNodes_EachListsAndWatchesOnlyItsOwn_AndApiWatchesOpenNoWatchOfTheirOwn()
    {
        var one = StartDaemonFor("node-1");
        var two = StartDaemonFor("node-2");
        var (grpc, _) = await one.WaitReadyAsync(Patience);
        await two.WaitReadyAsync(Patience);
        string[] mine = ["a1", "a2", "a3"], theirs = ["b1", "b2"];
        foreach (var name in mine)
        {
            await ApplyStoppedAsync(name, "node-1");
        }

        foreach (var name in theirs)
        {
            await ApplyStoppedAsync(name, "node-2");
        }

        foreach (var (name, daemon, node) in mine.Select(n => (n, one, "node-1")).Concat(theirs.Select(n => (n, two, "node-2"))))
        {
            var stopped = await WaitForPhaseAsync(daemon, name, "Stopped");
            ((string?)stopped["status"]!["node"]).Should().Be(node, $"{name} is reconciled by its own node");
        }

        var reads = Cluster.Server.Requests.Where(r => r.Resource == MicroVmResource.Plural && r.Verb is "list" or "watch" && r.Token.StartsWith("node-")).ToList();
        reads.Should().Contain(r => r.Token == "node-1" && r.Verb == "list").And.Contain(r => r.Token == "node-1" && r.Verb == "watch");
        reads.Should().Contain(r => r.Token == "node-2" && r.Verb == "list").And.Contain(r => r.Token == "node-2" && r.Verb == "watch");
        // The Lease holder's placement pass also lists the MicroVMs no node has ("!label"); nothing reads the whole cluster.
        reads.Where(r => r.LabelSelector != $"!{MicroVmResource.NodeLabel}").Should().OnlyContain(r => r.LabelSelector == $"{MicroVmResource.NodeLabel}={r.Token}",
            "a node's start-up list and its watch ask only for the MicroVMs labelled with it");
        reads.Where(r => r.Verb == "watch").Should().OnlyContain(r => r.LabelSelector == $"{MicroVmResource.NodeLabel}={r.Token}");
        var delivered = Cluster.Server.DeliveredWatchEvents.Where(e => e.Resource == MicroVmResource.Plural).ToList();
        delivered.Where(e => e.Token == "node-1").Select(e => e.Name).Distinct().Should().BeEquivalentTo(mine, "node-1's watch carried only node-1's MicroVMs");
        delivered.Where(e => e.Token == "node-2").Select(e => e.Name).Distinct().Should().BeEquivalentTo(theirs);

        // Five gRPC Watch calls on node-1's daemon: each gets node-1's three VMs and later changes, from the informer.
        var watchesBefore = Cluster.Server.Requests.Count(r => r.Verb == "watch" && r.Token == "node-1");
        using var channel = GrpcChannel.ForAddress(grpc);
        var client = new VMService.VMServiceClient(channel);
        using var cts = new CancellationTokenSource(Patience);
        var calls = Enumerable.Range(0, 5).Select(_ => client.Watch(new WatchMicroVMsRequest { Namespace = Namespace }, cancellationToken: cts.Token)).ToList();
        try
        {
            foreach (var call in calls)
            {
                var added = new List<string>();
                while (added.Count < mine.Length && await call.ResponseStream.MoveNext(cts.Token))
                {
                    added.Add(call.ResponseStream.Current.Microvm.Spec.Id);
                }

                added.Should().BeEquivalentTo(mine, "a gRPC watch starts with this node's MicroVMs and only those");
            }

            await Run("label", "mvm", "b1", "app=other");
            await Run("label", "mvm", "a1", "app=web");
            foreach (var call in calls)
            {
                (await call.ResponseStream.MoveNext(cts.Token)).Should().BeTrue();
                var change = call.ResponseStream.Current;
                (change.Type, change.Microvm.Spec.Id).Should().Be(("MODIFIED", "a1"), "node-2's b1 never reaches node-1");
            }
        }
        finally
        {
            foreach (var call in calls)
            {
                call.Dispose();
            }
        }

        Cluster.Server.Requests.Count(r => r.Verb == "watch" && r.Token == "node-1").Should().Be(watchesBefore,
            "gRPC Watch calls are served by the daemon's shared informer and open no watch against the API server");
        Cluster.Server.DeliveredWatchEvents.Where(e => e.Token == "node-1").Select(e => e.Name).Should().NotContain(theirs);
        TestContext.Progress.WriteLine(
            $"[measure] node-1: {Cluster.Server.Requests.Count(r => r.Token == "node-1" && r.Verb == "list" && r.Resource == MicroVmResource.Plural)} list(s), " +
            $"{Cluster.Server.Requests.Count(r => r.Token == "node-1" && r.Verb == "watch")} watch(es), " +
            $"{Cluster.Server.DeliveredWatchEvents.Count(e => e.Token == "node-1")} watch events for 5 gRPC watchers");
    }
}

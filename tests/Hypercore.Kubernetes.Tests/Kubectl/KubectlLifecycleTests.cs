using System.Text.Json.Nodes;
using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.Reconciliation;
using Hypercore.Store.Kubernetes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Kubernetes.Tests.Kubectl;

/// <summary>
/// The real kubectl against the fake API server, with the real reconciler on the Kubernetes store and an in-memory
/// driver: what a user does with kubectl becomes driver calls and status that kubectl shows. (The same with QEMU
/// needs the daemon and is run by the end-to-end suite.)
/// </summary>
[NonParallelizable]
public sealed class KubectlLifecycleTests
{
    private const string Node = "node-1"; // deploy/samples/microvm.yaml is labelled for node-1
    private FakeCluster _cluster = null!;
    private ReconcilerHost _host = null!;
    private readonly List<MicroVmInformer> _informers = [];
    private FakeDriver _driver = null!;
    private KubectlRunner _kubectl = null!;

    [SetUp]
    public async Task SetUp()
    {
        Assert.That(KubectlRunner.Available, $"{KubectlRunner.Binary} is required (Debian package kubernetes-client)");
        _cluster = await FakeCluster.StartAsync();
        _kubectl = _cluster.Kubectl();
        _driver = new FakeDriver("qemu");
        _host = await StartHostAsync();
    }

    /// <summary>A daemon's reconciler on its own store instance (a new one per "daemon start").</summary>
    private async Task<ReconcilerHost> StartHostAsync()
    {
        var store = _cluster.NewStore(Node);
        var drivers = new DriverRegistry([_driver], "qemu");
        var options = Options.Create(new ReconcilerOptions
        {
            NodeName = Node,
            Workers = 2,
            PollInterval = TimeSpan.FromMilliseconds(300),
            BackoffBase = TimeSpan.FromMilliseconds(100),
            BackoffCap = TimeSpan.FromSeconds(2),
            StopGracePeriod = TimeSpan.Zero,
        });
        var reconciler = new Reconciler(store, drivers, TimeProvider.System, options, NullLogger<Reconciler>.Instance);
        // The informer is started here and stopped with the test's cancellation: it has no other owner.
        var informer = new MicroVmInformer(store, TimeProvider.System, Options.Create(new InformerOptions()), NullLogger<MicroVmInformer>.Instance);
        await informer.StartAsync(CancellationToken.None);
        _informers.Add(informer);
        var host = new ReconcilerHost(informer, drivers, reconciler, options, TimeProvider.System, NullLogger<ReconcilerHost>.Instance);
        await host.StartAsync(CancellationToken.None);
        return host;
    }

    [TearDown]
    public async Task TearDown()
    {
        try
        {
            if (_host is not null)
            {
                await _host.StopAsync(CancellationToken.None);
                _host.Dispose();
            }

            foreach (var informer in _informers)
            {
                await informer.StopAsync(CancellationToken.None);
                informer.Dispose();
            }
        }
        finally
        {
            if (_cluster is not null)
            {
                var faults = _cluster.Server.Faults;
                await _cluster.DisposeAsync();
                faults.Should().BeEmpty();
            }
        }
    }

    [Test]
    public async Task ApplyGetPatchDelete_WithRealKubectl_DrivesTheReconcilerAndShowsThePhase()
    {
        var sample = Repo.Path_("deploy", "samples", "microvm.yaml");

        var apply = await Run("apply", "-f", sample);
        apply.Stdout.Should().Contain("microvm.hypercore.vistara.dev/hello created");

        await PhaseAsync("Running");
        var table = await GetTableAsync();
        table.Header.Should().Equal("NAME", "PHASE", "READY", "NODE", "PROVIDER", "VCPU", "MEMORY", "AGE", "GUESTREADY");
        table.Row("hello").Should().StartWith(["hello", "Running", "True", Node, "qemu", "1", "128"]);
        Object()["metadata"]!["finalizers"]!.AsArray().Select(f => (string?)f).Should().Contain(MicroVmResource.Finalizer);
        var uid = (string)Object()["metadata"]!["uid"]!;
        _driver.IsRunning(uid).Should().BeTrue();

        var pause = await Run("patch", "mvm", "hello", "--type=merge", "-p", """{"spec":{"state":"Paused"}}""");
        pause.Stdout.Should().Contain("microvm.hypercore.vistara.dev/hello patched");
        await PhaseAsync("Paused");
        (await GetTableAsync()).Row("hello")[1..3].Should().Equal("Paused", "False");
        ((long)Object()["metadata"]!["generation"]!).Should().Be(2);
        ((long)Object()["status"]!["observedGeneration"]!).Should().Be(2);

        await Run("patch", "mvm", "hello", "--type=merge", "-p", """{"spec":{"state":"Running"}}""");
        await PhaseAsync("Running");

        var delete = await Run("delete", "mvm", "hello", "--wait=false");
        delete.Stdout.Should().Contain("microvm.hypercore.vistara.dev \"hello\" deleted");
        await Eventually.UntilAsync(() => _cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, "default", "hello") is null,
            "the reconciler to clean up and remove the finalizer");
        var gone = await _kubectl.RunAsync("get", "mvm", "hello");
        gone.ExitCode.Should().NotBe(0);
        gone.Stderr.Should().Contain("NotFound");

        _driver.Calls.Should().Equal("Start hello", "Pause hello", "Resume hello", "Stop hello", "Cleanup hello");
        _driver.IsRunning(uid).Should().BeFalse();
        var reasons = _cluster.Server.List("", "events").Select(e => (string?)e["reason"]).ToList();
        reasons.Should().Contain(["Started", "Paused", "Resumed", "Deleted"]);
        var events = await Run("get", "events");
        events.Stdout.Should().Contain("hello.");
    }

    [Test]
    public async Task DaemonRestart_AdoptsTheRunningVm_WithoutStartingItAgain()
    {
        await Run("apply", "-f", Repo.Path_("deploy", "samples", "microvm.yaml"));
        await PhaseAsync("Running");
        var rv = (string?)Object()["metadata"]!["resourceVersion"];

        await _host.StopAsync(CancellationToken.None);
        _host.Dispose();
        _host = await StartHostAsync();
        await _host.Ready;
        await Eventually.UntilAsync(() => _host.Completed >= 3, "the new daemon to reconcile (adopt, then poll)");

        _driver.Calls.Should().Equal(["Start hello"], "the VM kept running across the restart and was adopted");
        ((string?)Object()["status"]!["phase"]).Should().Be("Running");
        ((string?)Object()["metadata"]!["resourceVersion"]).Should().Be(rv, "nothing changed, so nothing was written");
    }

    [Test]
    public async Task MicroVmForAnotherNode_IsLeftAlone()
    {
        var other = Path.Combine(_cluster.Directory.FullName, "other.yaml");
        await File.WriteAllTextAsync(other, (await File.ReadAllTextAsync(Repo.Path_("deploy", "samples", "microvm.yaml")))
            .Replace("hypercore.vistara.dev/node: node-1", "hypercore.vistara.dev/node: node-2", StringComparison.Ordinal));
        await Run("apply", "-f", other);
        var mine = Path.Combine(_cluster.Directory.FullName, "mine.yaml");
        await File.WriteAllTextAsync(mine, (await File.ReadAllTextAsync(Repo.Path_("deploy", "samples", "microvm.yaml")))
            .Replace("name: hello", "name: mine", StringComparison.Ordinal));
        await Run("apply", "-f", mine);

        // Once this node has finished with its own VM, it has had every chance to touch the other one.
        await Eventually.UntilAsync(() => (string?)_cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, "default", "mine")?["status"]?["phase"] == "Running",
            "this node's VM to run");

        var hello = Object();
        hello["status"].Should().BeNull("another node's MicroVM gets no status from this node");
        hello["metadata"]!["finalizers"].Should().BeNull("nor this node's finalizer");
        _driver.Calls.Should().Equal("Start mine");
        var table = await GetTableAsync();
        table.Row("hello")[1].Should().BeEmpty("kubectl shows no phase for it");
    }

    private JsonObject Object() =>
        _cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, "default", "hello") ?? throw new AssertionException("hello is gone");

    private Task PhaseAsync(string phase) =>
        Eventually.UntilAsync(() => (string?)_cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, "default", "hello")?["status"]?["phase"] == phase,
            $"status.phase {phase}");

    private async Task<KubectlResult> Run(params string[] args)
    {
        var r = await _kubectl.RunAsync(args);
        r.ExitCode.Should().Be(0, $"kubectl {string.Join(' ', args)}: {r}");
        return r;
    }

    private async Task<KubectlTable> GetTableAsync() => KubectlTable.Parse((await Run("get", "mvm")).Stdout);
}

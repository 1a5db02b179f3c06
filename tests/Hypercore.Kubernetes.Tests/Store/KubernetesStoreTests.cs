using System.Net;
using System.Net.Sockets;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.MicroVms;
using Hypercore.Store;
using Hypercore.Store.Kubernetes;
using Hypercore.Store.Kubernetes.Client;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Kubernetes.Tests.Store;

/// <summary>What the Kubernetes store does beyond the shared contract: watch recovery, node visibility, finalizers, events, resilience.</summary>
public sealed class KubernetesStoreTests
{
    private const string Group = MicroVmResource.Group;
    private const string Plural = MicroVmResource.Plural;
    private FakeCluster _cluster = null!;

    [SetUp]
    public async Task SetUp() => _cluster = await FakeCluster.StartAsync(bookmarkInterval: TimeSpan.FromHours(1)); // no bookmarks unless a test wants them

    [TearDown]
    public async Task TearDown()
    {
        var faults = _cluster.Server.Faults;
        await _cluster.DisposeAsync();
        faults.Should().BeEmpty("the fake API server must not fail internally");
    }

    private static MicroVmSpec Spec(string id, string node = "") => new()
    {
        Id = id,
        Kernel = new KernelSpec { Image = "/var/lib/hypercore/images/default/vmlinuz" },
        NodeName = node,
    };

    // ------------------------------------------------------------------ watch recovery

    [Test]
    public async Task Watch_ConnectionBroken_ReconnectsFromLastVersion_WithoutResync()
    {
        var store = _cluster.NewStore();
        await using var watch = new WatchRecorder(store);
        await store.CreateAsync(Spec("before"));
        await watch.WaitForAsync(e => e.MicroVm?.Spec.Id == "before", "the first Added");

        _cluster.Server.DropWatches(abort: true).Should().Be(1);
        await store.CreateAsync(Spec("after"));

        await watch.WaitForAsync(e => e.Type == StoreEventType.Added && e.MicroVm?.Spec.Id == "after", "Added after the reconnect");
        watch.Events.Should().NotContain(e => e.Type == StoreEventType.Resync, "resuming from the last resourceVersion loses nothing");
        _cluster.Server.Requests.Count(r => r.Verb == "watch").Should().BeGreaterThanOrEqualTo(2);
    }

    [Test]
    public async Task Watch_StreamClosedByServer_Reopens_AndKeepsDelivering()
    {
        var store = _cluster.NewStore();
        await using var watch = new WatchRecorder(store);
        await Eventually.UntilAsync(() => _cluster.Server.OpenWatches == 1, "the watch to open");

        _cluster.Server.DropWatches(abort: false);
        var created = await store.CreateAsync(Spec("vm-1"));

        (await watch.WaitForAsync(e => e.Type == StoreEventType.Added, "Added")).MicroVm!.Uid.Should().Be(created.Uid);
    }

    [Test]
    public async Task Watch_HistoryCompactedWhileDisconnected_Gets410_EmitsResync_AndKeepsDelivering()
    {
        // Reconnects wait at least 1 s, long enough to change and compact history while the watcher is away.
        var store = _cluster.NewStore(configure: o => o.ReconnectBaseDelay = o.ReconnectMaxDelay = TimeSpan.FromSeconds(2));
        await using var watch = new WatchRecorder(store);
        await store.CreateAsync(Spec("vm-1"));
        await watch.WaitForAsync(e => e.MicroVm?.Spec.Id == "vm-1", "Added vm-1");

        _cluster.Server.DropWatches(abort: true);
        await Eventually.UntilAsync(() => _cluster.Server.OpenWatches == 0, "the watch to close");
        await _cluster.NewStore("node-2").CreateAsync(Spec("elsewhere"));
        _cluster.Server.CompactHistory();

        await watch.WaitForAsync(e => e.Type == StoreEventType.Resync, "Resync after 410 Gone");
        await store.CreateAsync(Spec("vm-2"));
        await watch.WaitForAsync(e => e.Type == StoreEventType.Added && e.MicroVm?.Spec.Id == "vm-2", "Added vm-2 after the re-list");
        _cluster.Server.Requests.Count(r => r.Verb == "list").Should().BeGreaterThanOrEqualTo(2, "a 410 forces a new list");
    }

    [Test]
    public async Task Watch_GoneErrorEventOnOpenStream_EmitsResync_AndKeepsDelivering()
    {
        var store = _cluster.NewStore();
        await using var watch = new WatchRecorder(store);
        await Eventually.UntilAsync(() => _cluster.Server.OpenWatches == 1, "the watch to open");

        _cluster.Server.SendGoneToWatches().Should().Be(1);

        await watch.WaitForAsync(e => e.Type == StoreEventType.Resync, "Resync");
        await store.CreateAsync(Spec("vm-1"));
        await watch.WaitForAsync(e => e.Type == StoreEventType.Added && e.MicroVm?.Spec.Id == "vm-1", "Added after the Resync");
    }

    [Test]
    public async Task Watch_Bookmarks_AdvanceTheResumeVersion_SoCompactionNeedsNoResync()
    {
        await _cluster.DisposeAsync();
        _cluster = await FakeCluster.StartAsync(bookmarkInterval: TimeSpan.FromMilliseconds(200));
        var store = _cluster.NewStore(configure: o => o.Namespace = "team-a");
        await using var watch = new WatchRecorder(store);
        await Eventually.UntilAsync(() => _cluster.Server.OpenWatches == 1, "the watch to open");

        // A change in another namespace: this watch never gets an event for it; only bookmarks carry the newer version.
        await _cluster.NewStore().CreateAsync(Spec("elsewhere") with { Namespace = "team-b" });
        var sent = _cluster.Server.BookmarksSent;
        await Eventually.UntilAsync(() => _cluster.Server.BookmarksSent >= sent + 3, "bookmarks after the change");
        _cluster.Server.CompactHistory();
        _cluster.Server.DropWatches(abort: true);
        await store.CreateAsync(Spec("vm-1") with { Namespace = "team-a" });

        await watch.WaitForAsync(e => e.Type == StoreEventType.Added && e.MicroVm?.Spec.Id == "vm-1", "Added after reconnect");
        watch.Events.Should().NotContain(e => e.Type == StoreEventType.Resync, "the bookmarked version is not compacted away");
        _cluster.Server.Requests.Count(r => r.Verb == "list").Should().Be(1, "no re-list was needed");
    }

    [Test]
    public void ReconnectDelay_GrowsExponentially_WithJitter_UpToTheCap()
    {
        var store = _cluster.NewStore(configure: o =>
        {
            o.ReconnectBaseDelay = TimeSpan.FromMilliseconds(100);
            o.ReconnectMaxDelay = TimeSpan.FromSeconds(1);
        });

        var delays = Enumerable.Range(1, 8).Select(store.ReconnectDelay).ToList();

        for (var i = 0; i < delays.Count; i++)
        {
            var nominal = Math.Min(100 * Math.Pow(2, i), 1000);
            delays[i].TotalMilliseconds.Should().BeInRange(nominal / 2, nominal, $"failure {i + 1}");
        }

        delays.Skip(5).Should().OnlyContain(d => d <= TimeSpan.FromSeconds(1));
        delays.Distinct().Count().Should().BeGreaterThan(1, "jitter spreads reconnects of many nodes");
    }

    // ------------------------------------------------------------------ node visibility

    [Test]
    public async Task OtherNodesMicroVm_IsInvisible_ToGetListWatchAndWrites()
    {
        var mine = _cluster.NewStore("node-1");
        var theirs = _cluster.NewStore("node-2");
        await using var watch = new WatchRecorder(mine);
        var other = await theirs.CreateAsync(Spec("theirs"));
        var own = await mine.CreateAsync(Spec("mine"));

        await watch.WaitForAsync(e => e.MicroVm?.Spec.Id == "mine", "own Added");
        (await mine.GetAsync(other.Key)).Should().BeNull();
        (await mine.GetByUidAsync(other.Uid)).Should().BeNull();
        (await mine.ListAsync()).Select(v => v.Spec.Id).Should().Equal("mine");
        await FluentActions.Awaiting(() => mine.UpdateSpecAsync(other.Key, other.Spec with { Vcpu = 2 }, other.ResourceVersion))
            .Should().ThrowAsync<NotFoundException>();
        await FluentActions.Awaiting(() => mine.ClaimAsync(other.Key)).Should().ThrowAsync<NotFoundException>();
        await mine.RemoveAsync(other.Key);
        (await theirs.GetAsync(other.Key)).Should().NotBeNull("another node's record is not this node's to remove");
        watch.Events.Should().NotContain(e => e.MicroVm != null && e.MicroVm.Spec.Id == "theirs");
        (await theirs.ListAsync()).Select(v => v.Uid).Should().Equal(other.Uid);
        own.Spec.NodeName.Should().BeEmpty();
    }

    [Test]
    public async Task SpecNodeName_WinsOverTheNodeLabel_AndTheLabelFollowsIt()
    {
        var node1 = _cluster.NewStore("node-1");
        var node2 = _cluster.NewStore("node-2");

        // Created through node-1's daemon but assigned to node-2 in the spec: labelled node-2, the label nodes watch by.
        var vm = await node1.CreateAsync(Spec("assigned", node: "node-2"));

        (await node1.GetAsync(vm.Key)).Should().BeNull();
        (await node2.GetAsync(vm.Key)).Should().NotBeNull();
        (await node2.ListAsync()).Select(v => v.Spec.Id).Should().Equal("assigned");
        var stored = _cluster.Server.Get(Group, Plural, "default", "assigned")!;
        ((string?)stored["metadata"]!["labels"]![MicroVmResource.NodeLabel]).Should().Be("node-2", "nodes list and watch by the label, so it follows spec.nodeName");
    }

    [Test]
    public async Task ListAndWatch_AskTheServerOnlyForThisNodesMicroVms()
    {
        var node1 = _cluster.NewStore("node-1");
        var node2 = _cluster.NewStore("node-2");
        await using var watch1 = new WatchRecorder(node1);
        await using var watch2 = new WatchRecorder(node2);
        foreach (var i in Enumerable.Range(0, 3))
        {
            await node1.CreateAsync(Spec($"one-{i}"));
            await node2.CreateAsync(Spec($"two-{i}"));
        }

        await watch1.WaitForAsync(e => e.MicroVm?.Spec.Id == "one-2", "node-1's last Added");
        await watch2.WaitForAsync(e => e.MicroVm?.Spec.Id == "two-2", "node-2's last Added");
        (await node1.ListAsync()).Select(v => v.Spec.Id).Should().BeEquivalentTo(["one-0", "one-1", "one-2"]);

        var reads = _cluster.Server.Requests.Where(r => r.Resource == Plural && r.Verb is "list" or "watch").ToList();
        reads.Should().Contain(r => r.Verb == "watch" && r.Token == "node-1").And.Contain(r => r.Verb == "list" && r.Token == "node-2");
        reads.Should().OnlyContain(r => r.LabelSelector == $"{MicroVmResource.NodeLabel}={r.Token}",
            "each node's lists and watches carry its own node label selector, never the whole cluster");
        var delivered = _cluster.Server.DeliveredWatchEvents.Where(e => e.Resource == Plural).ToList();
        delivered.Where(e => e.Token == "node-1").Select(e => e.Name).Should().OnlyContain(n => n.StartsWith("one-"));
        delivered.Where(e => e.Token == "node-2").Select(e => e.Name).Should().OnlyContain(n => n.StartsWith("two-"));
        delivered.Should().Contain(e => e.Token == "node-1").And.Contain(e => e.Token == "node-2");
    }

    [Test]
    public async Task Create_WithoutNodeName_LabelsTheResourceWithThisNode()
    {
        var store = _cluster.NewStore("node-7");

        var vm = await store.CreateAsync(Spec("vm-1") with { Labels = new Dictionary<string, string> { ["app"] = "web" } });

        var stored = _cluster.Server.Get(Group, Plural, "default", "vm-1")!;
        ((string?)stored["metadata"]!["labels"]![MicroVmResource.NodeLabel]).Should().Be("node-7");
        ((string?)stored["metadata"]!["labels"]!["app"]).Should().Be("web");
        ((string?)stored["metadata"]!["uid"]).Should().Be(vm.Uid, "the uid is the API server's");
        vm.Spec.Labels.Should().Equal(new Dictionary<string, string> { ["app"] = "web" }, "the node label is not part of the spec");
    }

    [Test]
    public async Task Watch_ResourceRelabelledToAnotherNode_LooksDeleted()
    {
        var store = _cluster.NewStore("node-1");
        await using var watch = new WatchRecorder(store);
        var vm = await store.CreateAsync(Spec("moving"));
        await watch.WaitForAsync(e => e.Type == StoreEventType.Added, "Added");

        var r = await _cluster.Kubectl().RunAsync("label", "mvm", "moving", $"{MicroVmResource.NodeLabel}=node-2", "--overwrite");
        r.ExitCode.Should().Be(0, r.ToString());

        (await watch.WaitForAsync(e => e.Type == StoreEventType.Deleted, "Deleted")).MicroVm!.Uid.Should().Be(vm.Uid);
        (await store.GetAsync(vm.Key)).Should().BeNull();
    }

    // ------------------------------------------------------------------ finalizer and deletion

    [Test]
    public async Task Claim_AddsTheFinalizer_DeleteThenWaitsForRemove()
    {
        var store = _cluster.NewStore();
        var vm = await store.CreateAsync(Spec("vm-1"));

        await store.ClaimAsync(vm.Key);
        var claimed = _cluster.Server.Get(Group, Plural, "default", "vm-1")!;
        claimed["metadata"]!["finalizers"]!.AsArray().Select(f => (string?)f).Should().Equal(MicroVmResource.Finalizer);

        var marked = await store.MarkForDeletionAsync(vm.Key);
        marked.IsDeleting.Should().BeTrue();
        _cluster.Server.Get(Group, Plural, "default", "vm-1")!["metadata"]!["deletionTimestamp"].Should().NotBeNull();
        _cluster.Server.Requests.Should().Contain(r => r.Verb == "delete" && r.Name == "vm-1");

        await store.RemoveAsync(vm.Key);
        _cluster.Server.Get(Group, Plural, "default", "vm-1").Should().BeNull("the API server deletes the object once the last finalizer is gone");
    }

    [Test]
    public async Task Claim_KeepsFinalizersOfOthers()
    {
        var store = _cluster.NewStore();
        var vm = await store.CreateAsync(Spec("vm-1"));
        var r = await _cluster.Kubectl().RunAsync("patch", "mvm", "vm-1", "--type=merge", "-p", "{\"metadata\":{\"finalizers\":[\"example.com/other\"]}}");
        r.ExitCode.Should().Be(0, r.ToString());

        await store.ClaimAsync(vm.Key);
        await store.MarkForDeletionAsync(vm.Key);
        await store.RemoveAsync(vm.Key);

        var left = _cluster.Server.Get(Group, Plural, "default", "vm-1");
        left.Should().NotBeNull("another controller's finalizer still holds it");
        left!["metadata"]!["finalizers"]!.AsArray().Select(f => (string?)f).Should().Equal("example.com/other");
    }

    // ------------------------------------------------------------------ events

    [Test]
    public async Task UpdateStatus_PhaseChanges_RecordKubernetesEvents_AndARepeatBumpsTheCount()
    {
        var store = _cluster.NewStore();
        var vm = await store.CreateAsync(Spec("vm-1"));
        var t = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        MicroVmStatus Status(Phase phase, string readyReason = "Running", string message = "") => new()
        {
            Phase = phase,
            Pid = phase == Phase.Running ? 1234 : null,
            Conditions = [new Condition(Conditions.Ready, phase == Phase.Running ? ConditionStatus.True : ConditionStatus.False, readyReason, message, t, 1)],
        };

        vm = await store.UpdateStatusAsync(vm.Key, Status(Phase.Running), vm.ResourceVersion);
        vm = await store.UpdateStatusAsync(vm.Key, Status(Phase.Running) with { RestartCount = 0, Runtime = "tcg" }, vm.ResourceVersion); // no phase change
        vm = await store.UpdateStatusAsync(vm.Key, Status(Phase.Failed, "Crashed", "the hypervisor process ended unexpectedly"), vm.ResourceVersion);
        vm = await store.UpdateStatusAsync(vm.Key, Status(Phase.Provisioning, "Provisioning"), vm.ResourceVersion);
        vm = await store.UpdateStatusAsync(vm.Key, Status(Phase.Failed, "Crashed", "the hypervisor process ended unexpectedly"), vm.ResourceVersion);
        vm = await store.UpdateStatusAsync(vm.Key, Status(Phase.Paused, "Paused"), vm.ResourceVersion);
        vm = await store.UpdateStatusAsync(vm.Key, Status(Phase.Stopped, "Stopped"), vm.ResourceVersion);
        await store.MarkForDeletionAsync(vm.Key);
        await store.RemoveAsync(vm.Key);

        var events = _cluster.Server.List("", "events");
        var byReason = events.ToDictionary(e => (string)e["reason"]!);
        byReason.Keys.Should().BeEquivalentTo("Started", "Crashed", "Paused", "Stopped", "Deleted");
        ((int)byReason["Started"]["count"]!).Should().Be(1, "a status write without a phase change records nothing");
        ((int)byReason["Crashed"]["count"]!).Should().Be(2, "the same crash again bumps the count of the same Event");
        ((string?)byReason["Crashed"]["type"]).Should().Be("Warning");
        ((string?)byReason["Crashed"]["message"]).Should().Be("the hypervisor process ended unexpectedly");
        ((string?)byReason["Started"]["message"]).Should().Contain("pid 1234");
        foreach (var e in events)
        {
            ((string?)e["involvedObject"]!["kind"]).Should().Be("MicroVM");
            ((string?)e["involvedObject"]!["uid"]).Should().Be(vm.Uid);
            ((string?)e["involvedObject"]!["name"]).Should().Be("vm-1");
            ((string?)e["source"]!["host"]).Should().Be("node-1");
        }

        _cluster.Server.Requests.Should().Contain(r => r.Resource == "events" && r.Verb == "patch");
    }

    [Test]
    public async Task EventFailure_DoesNotFailTheStatusWrite()
    {
        var store = _cluster.NewStore(configure: o => o.MaxRetries = 0);
        var vm = await store.CreateAsync(Spec("vm-1"));
        _cluster.Server.FailNextRequests(1, 500, resource: "events");

        var written = await store.UpdateStatusAsync(vm.Key, new MicroVmStatus { Phase = Phase.Running }, vm.ResourceVersion);

        written.Status.Phase.Should().Be(Phase.Running);
        _cluster.Server.Requests.Should().Contain(r => r.Resource == "events" && r.Verb == "create", "the Event was attempted");
        _cluster.Server.List("", "events").Should().BeEmpty("its only attempt failed");
        (await store.GetAsync(vm.Key))!.Status.Phase.Should().Be(Phase.Running);
    }

    // ------------------------------------------------------------------ resilience

    [Test]
    public async Task TransientServerErrors_AreRetried()
    {
        var store = _cluster.NewStore();
        var vm = await store.CreateAsync(Spec("vm-1"));
        _cluster.Server.ClearRequests();
        _cluster.Server.FailNextRequests(2, 503);

        var read = await store.GetAsync(vm.Key);

        read.Should().Be(vm);
        _cluster.Server.Requests.Count(r => r.Verb == "get").Should().Be(3);
    }

    [Test]
    public async Task PersistentServerErrors_BecomeStoreException_AfterTheCappedRetries()
    {
        var store = _cluster.NewStore(configure: o => o.MaxRetries = 2);
        _cluster.Server.FailNextRequests(100, 500);

        var act = () => store.GetAsync(new VmKey("default", "vm-1"));

        (await act.Should().ThrowAsync<StoreException>()).Which.Message.Should().Contain("500");
        _cluster.Server.Requests.Count(r => r.Verb == "get").Should().Be(3);
    }

    [Test]
    public async Task Conflict_IsNotRetried()
    {
        var store = _cluster.NewStore();
        var vm = await store.CreateAsync(Spec("vm-1"));
        await store.UpdateSpecAsync(vm.Key, vm.Spec with { Vcpu = 2 }, vm.ResourceVersion);
        _cluster.Server.ClearRequests();

        var act = () => store.UpdateStatusAsync(vm.Key, new MicroVmStatus { Phase = Phase.Running }, vm.ResourceVersion);

        await act.Should().ThrowAsync<ConflictException>();
        _cluster.Server.Requests.Count(r => r.Verb == "update").Should().BeLessThanOrEqualTo(1);
    }

    [Test]
    public async Task UnreachableApiServer_IsAStoreException()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // nothing listens there now
        var config = new KubernetesApiConfig { Server = new Uri($"http://127.0.0.1:{port}") };
        using var store = new KubernetesMicroVmStore(new KubernetesApiClient(config), Options.Create(FakeCluster.TestOptions("node-1")),
            TimeProvider.System, NullLogger<KubernetesMicroVmStore>.Instance, new Random(1), ownsClient: true);

        var act = () => store.ListAsync();

        await act.Should().ThrowAsync<StoreException>().WithMessage("*unavailable*");
    }

    [Test]
    public async Task NamespacedStore_SeesOnlyItsNamespace_AndRefusesOthers()
    {
        var all = _cluster.NewStore();
        var scoped = _cluster.NewStore(configure: o => o.Namespace = "team-a");
        await all.CreateAsync(Spec("in-a") with { Namespace = "team-a" });
        await all.CreateAsync(Spec("in-b") with { Namespace = "team-b" });

        (await scoped.ListAsync()).Select(v => v.Key.ToString()).Should().Equal("team-a/in-a");
        (await scoped.ListAsync("team-b")).Should().BeEmpty();
        (await scoped.GetAsync(new VmKey("team-b", "in-b"))).Should().BeNull();
        await FluentActions.Awaiting(() => scoped.CreateAsync(Spec("x") with { Namespace = "team-b" })).Should().ThrowAsync<StoreException>();
        _cluster.Server.Requests.Where(r => r.Verb is "list" or "watch").Should().Contain(r => r.Namespace == "team-a");
    }
}

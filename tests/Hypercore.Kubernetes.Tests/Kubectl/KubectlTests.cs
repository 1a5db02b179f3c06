using Hypercore.Kubernetes.TestServer;
using System.Text.Json.Nodes;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.MicroVms;
using Hypercore.Store;
using Hypercore.Store.Kubernetes;

namespace Hypercore.Kubernetes.Tests.Kubectl;

/// <summary>The real kubectl against the fake API server and the CRD from crds/: validation, apply, patch, delete with the finalizer.</summary>
public sealed class KubectlTests
{
    private const string Group = MicroVmResource.Group;
    private const string Plural = MicroVmResource.Plural;
    private FakeCluster _cluster = null!;
    private KubectlRunner _kubectl = null!;

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
        var faults = _cluster.Server.Faults;
        await _cluster.DisposeAsync();
        faults.Should().BeEmpty();
    }

    [Test]
    public async Task Apply_Sample_StoresDefaultsAndIsVisibleToTheNodesStore()
    {
        var r = await _kubectl.RunAsync("apply", "-f", Sample);
        r.ExitCode.Should().Be(0, r.ToString());

        var vm = await _cluster.NewStore("node-1").GetAsync(new VmKey("default", "hello"));
        vm.Should().NotBeNull();
        vm!.Spec.Kernel.Image.Should().Be("/var/lib/hypercore/images/default/vmlinuz");
        vm.Spec.Initrd!.Image.Should().Be("/var/lib/hypercore/images/default/initrd.img");
        vm.Spec.Provider.Should().Be("qemu");
        vm.Spec.State.Should().Be(DesiredState.Running);
        vm.Generation.Should().Be(1);
        MicroVmSpecValidator.Validate(vm.Spec).Should().BeEmpty("the sample is a valid spec for every writer");
        (await _cluster.NewStore("node-2").GetAsync(vm.Key)).Should().BeNull("the sample is labelled for node-1");
    }

    [Test]
    public async Task Apply_Twice_IsUnchanged_AndWritesNothing()
    {
        (await _kubectl.RunAsync("apply", "-f", Sample)).ExitCode.Should().Be(0);
        var rv = _cluster.Server.CurrentResourceVersion;

        var again = await _kubectl.RunAsync("apply", "-f", Sample);

        again.ExitCode.Should().Be(0, again.ToString());
        again.Stdout.Should().Contain("microvm.hypercore.vistara.dev/hello unchanged");
        _cluster.Server.CurrentResourceVersion.Should().Be(rv);
    }

    [Test]
    public async Task Apply_Changed_SendsAMergePatch_AndBumpsGeneration()
    {
        (await _kubectl.RunAsync("apply", "-f", Sample)).ExitCode.Should().Be(0);
        var changed = Path.Combine(_cluster.Directory.FullName, "changed.yaml");
        await File.WriteAllTextAsync(changed, (await File.ReadAllTextAsync(Sample)).Replace("vcpu: 1", "vcpu: 2", StringComparison.Ordinal));

        var r = await _kubectl.RunAsync("apply", "-f", changed);

        r.ExitCode.Should().Be(0, r.ToString());
        r.Stdout.Should().Contain("configured");
        _cluster.Server.Requests.Should().Contain(q => q.Verb == "patch" && q.Name == "hello");
        var obj = Get("hello");
        ((int)obj["spec"]!["vcpu"]!).Should().Be(2);
        ((long)obj["metadata"]!["generation"]!).Should().Be(2);
    }

    [Test]
    public async Task Apply_OutOfRangeAndBadEnum_IsRejectedWithTheFieldPaths()
    {
        var bad = Write("bad.yaml", """
            apiVersion: hypercore.vistara.dev/v1alpha1
            kind: MicroVM
            metadata:
              name: bad
            spec:
              vcpu: 65
              memoryInMb: 8
              state: Sleeping
              interfaces:
                - deviceId: eth0
                  type: Bridge
            """);

        var r = await _kubectl.RunAsync("apply", "-f", bad);

        r.ExitCode.Should().NotBe(0);
        r.Stderr.Should().Contain("spec.vcpu").And.Contain("less than or equal to 64");
        r.Stderr.Should().Contain("spec.memoryInMb").And.Contain("greater than or equal to 16");
        r.Stderr.Should().Contain("spec.state").And.Contain("Unsupported value");
        r.Stderr.Should().Contain("spec.interfaces[0].type");
        r.Stderr.Should().Contain("spec.kernel: Required value");
        Get("bad", required: false).Should().BeNull();
    }

    [Test]
    public async Task Apply_Volumes_NeedAHostPathOrASizeForAScratchDisk()
    {
        var file = Write("volumes.yaml", """
            apiVersion: hypercore.vistara.dev/v1alpha1
            kind: MicroVM
            metadata:
              name: disks
            spec:
              kernel:
                image: /k
              rootVolume:
                id: root
                hostPath: /var/lib/hypercore/images/default/rootfs.img
              additionalVolumes:
                - id: scratch
                  sizeInMb: 64
                - id: nothing
            """);

        var rejected = await _kubectl.RunAsync("apply", "-f", file);
        rejected.ExitCode.Should().NotBe(0);
        rejected.Stderr.Should().Contain("spec.additionalVolumes[1]").And.Contain("must match at least one of");

        await File.WriteAllTextAsync(file, (await File.ReadAllTextAsync(file)).Replace("    - id: nothing", "", StringComparison.Ordinal));
        var accepted = await _kubectl.RunAsync("apply", "-f", file);
        accepted.ExitCode.Should().Be(0, accepted.ToString());
        var vm = await _cluster.NewStore("node-1").GetAsync(new VmKey("default", "disks"));
        vm.Should().BeNull("it has no node label");
        var stored = Get("disks")["spec"]!;
        ((int)stored["additionalVolumes"]![0]!["sizeInMb"]!).Should().Be(64);
        ((string?)stored["rootVolume"]!["hostPath"]).Should().EndWith("rootfs.img");
    }

    [Test]
    public async Task Apply_UnknownField_IsRejectedByServerSideFieldValidation()
    {
        var bad = Write("unknown.yaml", """
            apiVersion: hypercore.vistara.dev/v1alpha1
            kind: MicroVM
            metadata:
              name: typo
            spec:
              kernel:
                image: /k
              vcpus: 2
            """);

        var r = await _kubectl.RunAsync("apply", "-f", bad);

        r.ExitCode.Should().NotBe(0);
        r.Stderr.Should().Contain("unknown field \"spec.vcpus\"");
        _cluster.Server.Requests.Should().Contain(q => q.Verb == "create", "kubectl left validation to the server (fieldValidation=Strict)");
    }

    [Test]
    public async Task Apply_UnknownField_WithValidateFalse_IsPruned()
    {
        var file = Write("unknown.yaml", """
            apiVersion: hypercore.vistara.dev/v1alpha1
            kind: MicroVM
            metadata:
              name: pruned
            spec:
              kernel:
                image: /k
              vcpus: 2
            """);

        var r = await _kubectl.RunAsync("apply", "--validate=false", "-f", file);

        r.ExitCode.Should().Be(0, r.ToString());
        var spec = Get("pruned")["spec"]!.AsObject();
        spec.ContainsKey("vcpus").Should().BeFalse("unknown fields are pruned, as the API server does for structural schemas");
        ((int)spec["vcpu"]!).Should().Be(1, "the CRD default applies");
        ((string?)spec["state"]).Should().Be("Running");
        ((string?)spec["restartPolicy"]).Should().Be("Always");
    }

    [Test]
    public async Task Patch_Status_OnTheMainResourceIsIgnored_ButWorksThroughTheSubresource()
    {
        (await _kubectl.RunAsync("apply", "-f", Sample)).ExitCode.Should().Be(0);
        var before = Get("hello");

        var main = await _kubectl.RunAsync("patch", "mvm", "hello", "--type=merge", "-p", """{"status":{"phase":"Running"}}""");
        main.ExitCode.Should().Be(0, main.ToString());
        Get("hello")["status"].Should().BeNull("status changes are ignored on the main resource");
        ((string?)Get("hello")["metadata"]!["resourceVersion"]).Should().Be((string?)before["metadata"]!["resourceVersion"], "an ignored change is a no-op");

        var sub = await _kubectl.RunAsync("patch", "mvm", "hello", "--subresource=status", "--type=merge", "-p", """{"status":{"phase":"Running"},"spec":{"vcpu":8}}""");
        sub.ExitCode.Should().Be(0, sub.ToString());
        var after = Get("hello");
        ((string?)after["status"]!["phase"]).Should().Be("Running");
        ((int)after["spec"]!["vcpu"]!).Should().Be(1, "spec changes are ignored on the status subresource");
        ((long)after["metadata"]!["generation"]!).Should().Be(1, "status writes never bump the generation");
    }

    [Test]
    public async Task Patch_State_IsSeenByTheStoresWatch()
    {
        (await _kubectl.RunAsync("apply", "-f", Sample)).ExitCode.Should().Be(0);
        var store = _cluster.NewStore("node-1");
        await using var watch = new WatchRecorder(store);
        await Eventually.UntilAsync(() => _cluster.Server.OpenWatches == 1, "the watch to open");

        var r = await _kubectl.RunAsync("patch", "mvm", "hello", "--type=merge", "-p", """{"spec":{"state":"Paused"}}""");

        r.ExitCode.Should().Be(0, r.ToString());
        var ev = await watch.WaitForAsync(e => e.Type == StoreEventType.Modified, "Modified");
        ev.MicroVm!.Spec.State.Should().Be(DesiredState.Paused);
        ev.MicroVm.Generation.Should().Be(2);
    }

    [Test]
    public async Task Get_ShowsPrinterColumns_FromStatusWrittenByTheStore()
    {
        (await _kubectl.RunAsync("apply", "-f", Sample)).ExitCode.Should().Be(0);
        var store = _cluster.NewStore("node-1");
        var vm = (await store.GetAsync(new VmKey("default", "hello")))!;
        var at = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        await store.UpdateStatusAsync(vm.Key, new MicroVmStatus
        {
            Phase = Phase.Running,
            Node = "node-1",
            Conditions = [new Condition(Conditions.Ready, ConditionStatus.True, "Running", "", at, 1)],
        }, vm.ResourceVersion);

        var r = await _kubectl.RunAsync("get", "mvm");
        var wide = await _kubectl.RunAsync("get", "microvms.hypercore.vistara.dev", "hello");

        r.ExitCode.Should().Be(0, r.ToString());
        var table = KubectlTable.Parse(r.Stdout);
        table.Header.Should().Equal("NAME", "PHASE", "READY", "NODE", "PROVIDER", "VCPU", "MEMORY", "AGE", "GUESTREADY");
        table.Row("hello")[..7].Should().Equal("hello", "Running", "True", "node-1", "qemu", "1", "128");
        KubectlTable.Parse(wide.Stdout).Row("hello")[1].Should().Be("Running");
    }

    [Test]
    public async Task Delete_ClaimedMicroVm_StaysUntilTheStoreRemovesTheFinalizer()
    {
        (await _kubectl.RunAsync("apply", "-f", Sample)).ExitCode.Should().Be(0);
        var store = _cluster.NewStore("node-1");
        var key = new VmKey("default", "hello");
        await store.ClaimAsync(key);
        await using var watch = new WatchRecorder(store);
        await Eventually.UntilAsync(() => _cluster.Server.OpenWatches == 1, "the watch to open");

        var r = await _kubectl.RunAsync("delete", "mvm", "hello", "--wait=false");

        r.ExitCode.Should().Be(0, r.ToString());
        r.Stdout.Should().Contain("\"hello\" deleted");
        var deleting = await watch.WaitForAsync(e => e.Type == StoreEventType.Modified && e.MicroVm!.IsDeleting, "the deletion request");
        deleting.MicroVm!.Claimed.Should().BeTrue();
        Get("hello")["metadata"]!["deletionTimestamp"].Should().NotBeNull();
        (await _kubectl.RunAsync("get", "mvm", "hello")).ExitCode.Should().Be(0, "the finalizer holds the object");

        await store.RemoveAsync(key);

        await watch.WaitForAsync(e => e.Type == StoreEventType.Deleted, "Deleted");
        var gone = await _kubectl.RunAsync("get", "mvm", "hello");
        gone.ExitCode.Should().NotBe(0);
        gone.Stderr.Should().Contain("NotFound");
    }

    [Test]
    public async Task Discovery_ShortNameAndCategory_Resolve()
    {
        (await _kubectl.RunAsync("apply", "-f", Sample)).ExitCode.Should().Be(0);

        var resources = await _kubectl.RunAsync("api-resources", "--api-group=hypercore.vistara.dev");
        var byCategory = await _kubectl.RunAsync("get", "hypercore");

        resources.ExitCode.Should().Be(0, resources.ToString());
        var row = KubectlTable.Parse(resources.Stdout).Row("microvms");
        row.Should().Equal("microvms", "mvm", "hypercore.vistara.dev/v1alpha1", "true", "MicroVM");
        byCategory.ExitCode.Should().Be(0, byCategory.ToString());
        byCategory.Stdout.Should().Contain("hello");
    }

    [Test]
    public async Task NodeName_OnceSet_CannotBeChangedOrRemoved_ButMayBeSetWhenEmpty()
    {
        // Kubernetes issue 13: the CRD's CEL rules, checked by the test server's evaluator, refused through real kubectl.
        var placed = Write("placed.yaml", """
            apiVersion: hypercore.vistara.dev/v1alpha1
            kind: MicroVM
            metadata:
              name: placed
            spec:
              kernel: { image: /k }
              nodeName: node-1
            """);
        (await _kubectl.RunAsync("apply", "-f", placed)).ExitCode.Should().Be(0);

        var move = await _kubectl.RunAsync("patch", "mvm", "placed", "--type=merge", "-p", """{"spec":{"nodeName":"node-2"}}""");
        var remove = await _kubectl.RunAsync("patch", "mvm", "placed", "--type=merge", "-p", """{"spec":{"nodeName":null}}""");
        var same = await _kubectl.RunAsync("patch", "mvm", "placed", "--type=merge", "-p", """{"spec":{"nodeName":"node-1","vcpu":2}}""");

        move.ExitCode.Should().NotBe(0);
        move.Stderr.Should().Contain("spec.nodeName").And.Contain("spec.nodeName is immutable once set");
        remove.ExitCode.Should().NotBe(0);
        remove.Stderr.Should().Contain("spec.nodeName cannot be removed once set");
        same.ExitCode.Should().Be(0, "other spec changes with the same nodeName are fine: " + same);
        ((string?)Get("placed")["spec"]!["nodeName"]).Should().Be("node-1");

        var unplaced = Write("unplaced.yaml", """
            apiVersion: hypercore.vistara.dev/v1alpha1
            kind: MicroVM
            metadata:
              name: unplaced
            spec:
              kernel: { image: /k }
              nodeName: ""
            """);
        (await _kubectl.RunAsync("apply", "-f", unplaced)).ExitCode.Should().Be(0);
        var place = await _kubectl.RunAsync("patch", "mvm", "unplaced", "--type=merge", "-p", """{"spec":{"nodeName":"node-3"}}""");
        place.ExitCode.Should().Be(0, "\"\" -> a node is the one allowed transition: " + place);
        var bare = Write("bare.yaml", """
            apiVersion: hypercore.vistara.dev/v1alpha1
            kind: MicroVM
            metadata:
              name: bare
            spec:
              kernel: { image: /k }
            """);
        (await _kubectl.RunAsync("apply", "-f", bare)).ExitCode.Should().Be(0);
        (await _kubectl.RunAsync("patch", "mvm", "bare", "--type=merge", "-p", """{"spec":{"nodeName":"node-4"}}""")).ExitCode.Should().Be(0);
        ((string?)Get("bare")["spec"]!["nodeName"]).Should().Be("node-4");
    }

    [Test]
    public void CelRules_EveryRuleOfTheCrd_IsOneTheTestServerChecks()
    {
        var schema = _cluster.Server.Type(Group, Plural).Schema!;

        CelRules.Unchecked(schema).Should().BeEmpty("a rule the test server cannot evaluate would pass untested");
        CelRules.Unchecked(JsonNode.Parse("""{"x-kubernetes-validations":[{"rule":"size(self.name) < 10"},{"rule":"self.a == oldSelf.a"}]}""")!.AsObject())
            .Should().Equal("size(self.name) < 10");
    }

    private static string Sample => Repo.Path_("deploy", "samples", "microvm.yaml");

    private string Write(string name, string yaml)
    {
        var path = Path.Combine(_cluster.Directory.FullName, name);
        File.WriteAllText(path, yaml);
        return path;
    }

    private JsonObject Get(string name) => Get(name, required: true)!;

    private JsonObject? Get(string name, bool required)
    {
        var obj = _cluster.Server.Get(Group, Plural, "default", name);
        return obj is null && required ? throw new AssertionException($"{name} does not exist") : obj;
    }
}

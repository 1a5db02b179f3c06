using Hypercore.Admission;
using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Admission;

/// <summary>
/// Admission (start step 100) through the real reconciler and informer over the in-memory store: a VM starts only
/// when its memory + overhead and vCPUs fit in what the node has left.
/// </summary>
public class AdmissionStepTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private FakeTimeProvider _time = null!;
    private MicroVmInformer _informer = null!;
    private AdmissionStep _step = null!;
    private Reconciler _reconciler = null!;
    private NodeCapacity _capacity = null!;

    private sealed class FixedHost(long memoryMb, int cpus) : IHostResources
    {
        public long MemoryMb => memoryMb;

        public int Cpus => cpus;
    }

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver();
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero));
    }

    [TearDown]
    public async Task TearDown()
    {
        if (_informer is not null)
        {
            await _informer.StopAsync(CancellationToken.None);
            _informer.Dispose();
        }

        _step?.Dispose();
    }

    /// <summary>Host 2048 MiB / 2 CPUs unless said otherwise; 512 MiB reserved, 64 MiB per VM, overcommit 2.</summary>
    private async Task StartAsync(long hostMemoryMb = 2048, int hostCpus = 2, double ratio = 2, string node = "n")
    {
        var capacityOptions = new CapacityOptions { ReservedMemoryMb = 512, VmMemoryOverheadMb = 64, CpuOvercommitRatio = ratio };
        var reconcilerOptions = Options.Create(new ReconcilerOptions { NodeName = node });
        _capacity = new NodeCapacity(new FixedHost(hostMemoryMb, hostCpus), Options.Create(capacityOptions), reconcilerOptions);
        _informer = new MicroVmInformer(_store, _time, Options.Create(new InformerOptions { ResyncInterval = TimeSpan.FromHours(1) }),
            NullLogger<MicroVmInformer>.Instance);
        await _informer.StartAsync(CancellationToken.None);
        await _informer.Synced.WaitAsync(Patience);
        _step = new AdmissionStep(_capacity, _informer, _time, NullLogger<AdmissionStep>.Instance);
        _reconciler = new Reconciler(_store, new DriverRegistry([_driver], "fake"), _time, reconcilerOptions,
            NullLogger<Reconciler>.Instance, [_step]);
    }

    private static MicroVmSpec Spec(string id, int memoryMb = 512, int vcpu = 1, string node = "") =>
        new() { Id = id, MemoryInMb = memoryMb, Vcpu = vcpu, NodeName = node, Kernel = new KernelSpec { Image = "/k" } };

    private async Task<MicroVm> Reconciled(MicroVm vm)
    {
        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        await InformerCaughtUp();
        return (await _store.GetAsync(vm.Key))!;
    }

    /// <summary>The informer has every record at the version the store has (and none the store lost).</summary>
    private async Task InformerCaughtUp()
    {
        using var cts = new CancellationTokenSource(Patience);
        while (true)
        {
            var stored = await _store.ListAsync();
            var cached = _informer.List();
            if (stored.Count == cached.Count && stored.All(s => _informer.Get(s.Key)?.ResourceVersion == s.ResourceVersion))
            {
                return;
            }

            await Task.Delay(10, cts.Token);
        }
    }

    [Test]
    public async Task VmThatDoesNotFit_WaitsWithAdmittedFalseAndTheNumbers_ThenStartsOnceAnotherIsDeleted()
    {
        await StartAsync(); // 2048 - 512 = 1536 MiB allocatable; each VM takes 512 + 64
        var a = await Reconciled(await _store.CreateAsync(Spec("a")));
        var b = await Reconciled(await _store.CreateAsync(Spec("b")));
        var c = await _store.CreateAsync(Spec("c"));

        var result = await _reconciler.ReconcileAsync(c.Key, CancellationToken.None);

        a.Status.Phase.Should().Be(Phase.Running);
        b.Status.Phase.Should().Be(Phase.Running);
        a.Status.FindCondition(AdmissionConditions.Admitted)!.Status.Should().Be(ConditionStatus.True);
        result.Should().Be(ReconcileResult.After(TimeSpan.FromSeconds(10)), "a waiting VM is tried again after the retry interval");
        var waiting = (await _store.GetAsync(c.Key))!;
        waiting.Status.Phase.Should().Be(Phase.Pending);
        var admitted = waiting.Status.FindCondition(AdmissionConditions.Admitted)!;
        admitted.Status.Should().Be(ConditionStatus.False);
        admitted.Reason.Should().Be("InsufficientMemory");
        admitted.Message.Should().Contain("needs 576 MiB (512 MiB + 64 MiB overhead)").And.Contain("1152 of 1536 MiB").And.Contain("384 MiB free");
        waiting.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be("InsufficientMemory");
        _driver.CallCount("start").Should().Be(2);
        _step.Waiting.Should().Equal(c.Key);

        await _store.MarkForDeletionAsync(a.Key);
        await _reconciler.ReconcileAsync(a.Key, CancellationToken.None);
        await InformerCaughtUp();
        var started = await Reconciled(waiting);

        started.Status.Phase.Should().Be(Phase.Running);
        started.Status.FindCondition(AdmissionConditions.Admitted)!.Status.Should().Be(ConditionStatus.True);
        _step.Waiting.Should().BeEmpty();
        var report = _step.Report();
        report.Allocated.Should().Be(new NodeResources(1152, 2));
        report.Free.Should().Be(new NodeResources(384, 2));
        report.Admitted.Should().Equal(b.Key, c.Key);
    }

    [Test]
    public async Task TooManyVcpus_WaitsWithInsufficientCpu()
    {
        await StartAsync(hostCpus: 1, ratio: 2); // 2 vCPUs allocatable
        await Reconciled(await _store.CreateAsync(Spec("big", memoryMb: 128, vcpu: 2)));
        var small = await Reconciled(await _store.CreateAsync(Spec("small", memoryMb: 128, vcpu: 1)));

        var admitted = small.Status.FindCondition(AdmissionConditions.Admitted)!;
        admitted.Status.Should().Be(ConditionStatus.False);
        admitted.Reason.Should().Be("InsufficientCPU");
        admitted.Message.Should().Contain("needs 1 vCPU; 2 of 2 allocatable vCPUs");
        small.Status.Phase.Should().Be(Phase.Pending);
    }

    [Test]
    public async Task VmBiggerThanTheWholeNode_FailsWithoutStarting()
    {
        await StartAsync();
        var vm = await Reconciled(await _store.CreateAsync(Spec("huge", memoryMb: 4096)));

        vm.Status.Phase.Should().Be(Phase.Failed);
        var admitted = vm.Status.FindCondition(AdmissionConditions.Admitted)!;
        admitted.Status.Should().Be(ConditionStatus.False);
        admitted.Reason.Should().Be("InsufficientMemory");
        admitted.Message.Should().Contain("needs 4160 MiB").And.Contain("only 1536 MiB allocatable");
        _driver.CallCount("start").Should().Be(0);
    }

    [Test]
    public async Task StoppedVm_GivesBackItsShare()
    {
        await StartAsync();
        var a = await Reconciled(await _store.CreateAsync(Spec("a", memoryMb: 1000)));
        var b = await Reconciled(await _store.CreateAsync(Spec("b", memoryMb: 1000)));
        b.Status.FindCondition(AdmissionConditions.Admitted)!.Status.Should().Be(ConditionStatus.False);

        var stopped = await _store.UpdateSpecAsync(a.Key, a.Spec with { State = DesiredState.Stopped }, a.ResourceVersion);
        (await Reconciled(stopped)).Status.Phase.Should().Be(Phase.Stopped);
        var started = await Reconciled(b);

        started.Status.Phase.Should().Be(Phase.Running);
    }

    [Test]
    public async Task RunningVmAdoptedWithoutAnAdmittedCondition_StillCountsAgainstTheNode()
    {
        await StartAsync();
        _store.Seed(new MicroVm
        {
            Uid = "adopted-uid", Spec = Spec("old", memoryMb: 1200), ResourceVersion = "1",
            Status = MicroVmStatus.Initial with { Phase = Phase.Running, Pid = 42 },
        });
        await InformerCaughtUp();

        var vm = await Reconciled(await _store.CreateAsync(Spec("new", memoryMb: 512)));

        vm.Status.FindCondition(AdmissionConditions.Admitted)!.Message.Should().Contain("1264 of 1536 MiB");
    }

    [Test]
    public async Task OtherNodesVms_AreNotCharged()
    {
        await StartAsync(node: "n");
        _store.Seed(new MicroVm
        {
            Uid = "elsewhere", Spec = Spec("other", memoryMb: 1400, node: "m"), ResourceVersion = "1",
            Status = MicroVmStatus.Initial with { Phase = Phase.Running },
        });
        await InformerCaughtUp();

        var vm = await Reconciled(await _store.CreateAsync(Spec("mine", memoryMb: 1400, node: "n")));

        vm.Status.Phase.Should().Be(Phase.Running);
    }

    [Test]
    public async Task TwoVmsDecidedAtOnce_OnlyOneTakesTheLastRoom()
    {
        await StartAsync(); // room for exactly two of 700 + 64
        await Reconciled(await _store.CreateAsync(Spec("first", memoryMb: 700)));
        var x = await _store.CreateAsync(Spec("x", memoryMb: 700));
        var y = await _store.CreateAsync(Spec("y", memoryMb: 700));
        await InformerCaughtUp();

        // Admission decides one at a time and counts what it admitted before the record shows it.
        await Task.WhenAll(
            Task.Run(() => _reconciler.ReconcileAsync(x.Key, CancellationToken.None)),
            Task.Run(() => _reconciler.ReconcileAsync(y.Key, CancellationToken.None)));

        var phases = new[] { (await _store.GetAsync(x.Key))!.Status.Phase, (await _store.GetAsync(y.Key))!.Status.Phase };
        phases.Should().BeEquivalentTo([Phase.Running, Phase.Pending]);
        _driver.CallCount("start").Should().Be(2);
    }

    [Test]
    public void Allocatable_IsCapacityMinusReserve_WithCpusOvercommitted()
    {
        var capacity = new NodeCapacity(new FixedHost(8192, 4),
            Options.Create(new CapacityOptions { ReservedMemoryMb = 1024, ReservedCpus = 1, CpuOvercommitRatio = 1.5 }),
            Options.Create(new ReconcilerOptions { NodeName = "n" }));

        capacity.Allocatable.Should().Be(new NodeResources(7168, 4)); // floor((4 - 1) x 1.5)
        capacity.NeverFits(Spec("v", memoryMb: 7104, vcpu: 4)).Should().BeNull();
        capacity.NeverFits(Spec("v", memoryMb: 7105))!.Value.Reason.Should().Be("InsufficientMemory");
        capacity.NeverFits(Spec("v", memoryMb: 128, vcpu: 5))!.Value.Reason.Should().Be("InsufficientCPU");
    }

    [Test]
    public void ConfiguredCapacity_OverridesTheHost()
    {
        var capacity = new NodeCapacity(new FixedHost(8192, 4),
            Options.Create(new CapacityOptions { MemoryMb = 1000, Cpus = 1, ReservedMemoryMb = 0, CpuOvercommitRatio = 1 }),
            Options.Create(new ReconcilerOptions { NodeName = "n" }));

        capacity.Capacity.Should().Be(new NodeResources(1000, 1));
    }

    [Test]
    public void AllocatedTotal_CountsWhatAllocatedCounts_WithoutTheHolderList()
    {
        var capacity = new NodeCapacity(new FixedHost(8192, 4),
            Options.Create(new CapacityOptions { ReservedMemoryMb = 0, VmMemoryOverheadMb = 64 }),
            Options.Create(new ReconcilerOptions { NodeName = "n" }));
        MicroVm Vm(string id, Phase phase, string node = "") => new()
        {
            Uid = "uid-" + id, Spec = Spec(id, memoryMb: 256, node: node), ResourceVersion = "1", Status = MicroVmStatus.Initial with { Phase = phase },
        };
        var vms = new[]
        {
            Vm("running", Phase.Running), Vm("stopped", Phase.Stopped), Vm("elsewhere", Phase.Running, node: "other"),
            Vm("pending-admitted", Phase.Pending), Vm("pending", Phase.Pending), Vm("self", Phase.Running),
        };
        var admitted = new Dictionary<string, (VmKey Key, NodeResources Charged)>(StringComparer.Ordinal)
        {
            ["uid-pending-admitted"] = (vms[3].Key, new NodeResources(320, 1)),
            ["uid-not-listed-yet"] = (new VmKey("default", "not-listed-yet"), new NodeResources(1000, 2)),
        };
        MicroVm? Find(VmKey key) => vms.FirstOrDefault(v => v.Key == key);

        var total = capacity.AllocatedTotal(vms, admitted, exceptUid: "uid-self", Find);

        total.Should().Be(capacity.Allocated(vms, admitted, exceptUid: "uid-self").Total);
        total.Should().Be(new NodeResources(320 + 320 + 1000, 1 + 1 + 2), "running (256 + 64 overhead), the admitted pending one and the admitted one not listed yet");
    }

    [Test]
    public void Holds_ProvisioningVm_OnlyOnceAdmitted()
    {
        // The reconciler writes Provisioning with its claim, before admission decides (issue 15).
        var claimed = new MicroVm
        {
            Uid = "u", Spec = Spec("p"), ResourceVersion = "1", Status = MicroVmStatus.Initial with { Phase = Phase.Provisioning },
        };
        var admitted = claimed with
        {
            Status = claimed.Status with
            {
                Conditions = Conditions.Set([], AdmissionConditions.Admitted, ConditionStatus.True, AdmissionConditions.ReasonAdmitted, "", 1, DateTimeOffset.UnixEpoch),
            },
        };

        NodeCapacity.Holds(claimed, admittedHere: false).Should().BeFalse("a VM not yet admitted takes no share from the others");
        NodeCapacity.Holds(claimed, admittedHere: true).Should().BeTrue();
        NodeCapacity.Holds(admitted, admittedHere: false).Should().BeTrue("admitted before a daemon restart");
    }

    [Test]
    public void MemTotal_IsReadFromMeminfo()
    {
        var path = Path.Combine(Path.GetTempPath(), $"k8s-meminfo-{Guid.NewGuid():N}");
        File.WriteAllText(path, "MemTotal:       24683520 kB\nMemFree:        22461888 kB\n");
        try
        {
            ProcHostResources.ReadMemTotalMb(path).Should().Be(24105);
            ProcHostResources.ReadMemTotalMb(path + ".missing").Should().Be(0);
        }
        finally
        {
            File.Delete(path);
        }
    }
}

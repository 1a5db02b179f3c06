using Hypercore.Admission;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Options;

namespace Hypercore.Core.Tests.Admission;

/// <summary>
/// The running total of what VMs hold (issue 15) against the O(n) computation it replaces: after every change —
/// records added, changed, replaced by a new incarnation, deleted; admissions and releases, also of records not cached
/// yet — the ledger's total, for every uid left out and for none, equals <see cref="NodeCapacity.AllocatedTotal"/> over
/// the same cache and admissions.
/// </summary>
public class AllocationLedgerTests
{
    private static readonly Phase[] Phases = Enum.GetValues<Phase>();

    private NodeCapacity _capacity = null!;
    private AllocationLedger _ledger = null!;
    private Dictionary<VmKey, MicroVm> _cache = null!;
    private Dictionary<string, (VmKey Key, NodeResources Charged)> _admitted = null!;
    private int _uids;

    private sealed class FixedHost(long memoryMb, int cpus) : IHostResources
    {
        public long MemoryMb => memoryMb;

        public int Cpus => cpus;
    }

    [SetUp]
    public void SetUp()
    {
        _capacity = new NodeCapacity(new FixedHost(1 << 20, 64),
            Options.Create(new CapacityOptions { ReservedMemoryMb = 0, VmMemoryOverheadMb = 64 }),
            Options.Create(new ReconcilerOptions { NodeName = "n" }));
        _ledger = new AllocationLedger(_capacity);
        _cache = [];
        _admitted = new Dictionary<string, (VmKey Key, NodeResources Charged)>(StringComparer.Ordinal);
        _uids = 0;
    }

    [Test]
    public void Total_AfterEachOfThousandsOfRandomChanges_EqualsAllocatedTotalOverTheCache()
    {
        var random = new Random(15);
        var keys = Enumerable.Range(0, 40).Select(i => new VmKey("default", $"vm-{i}")).ToArray();
        for (var step = 0; step < 5000; step++)
        {
            var key = keys[random.Next(keys.Length)];
            var cached = _cache.GetValueOrDefault(key);
            switch (random.Next(7))
            {
                case 0 or 1:
                    // Added when missing; otherwise a change of phase, conditions or spec (new resource version, same uid).
                    Upsert(cached is null ? NewVm(key, random) : Changed(cached, random));
                    break;
                case 2 when cached is not null:
                    Upsert(NewVm(key, random)); // deleted and created again between two events: a new uid under the key
                    break;
                case 3 when cached is not null:
                    Delete(cached);
                    break;
                case 4 when cached is not null:
                    Admit(cached.Uid, key, random);
                    break;
                case 5:
                    Admit($"uid-unlisted-{_uids++}", key, random); // admitted before the informer lists it
                    break;
                case 6 when _admitted.Count > 0:
                    var uid = _admitted.Keys.ElementAt(random.Next(_admitted.Count));
                    _admitted.Remove(uid);
                    _ledger.Release(uid).Should().NotBeNull();
                    break;
            }

            Check(step);
        }
    }

    [Test]
    public void Total_LeavesOutTheDecidingVmsOwnShare()
    {
        var running = NewVm(new VmKey("default", "a"), phase: Phase.Running, memoryMb: 256, vcpu: 2);
        var pending = NewVm(new VmKey("default", "b"), phase: Phase.Pending, memoryMb: 512, vcpu: 1);
        Upsert(running);
        Upsert(pending);
        _admitted[pending.Uid] = (pending.Key, new NodeResources(576, 1));
        _ledger.Admit(pending.Uid, pending.Key, new NodeResources(576, 1));

        _ledger.Total(exceptUid: null).Should().Be(new NodeResources(320 + 576, 3));
        _ledger.Total(exceptUid: pending.Uid).Should().Be(new NodeResources(320, 2));
        _ledger.Total(exceptUid: running.Uid).Should().Be(new NodeResources(576, 1));
    }

    [Test]
    public void Release_OfAnUnknownUid_ReturnsNullAndChangesNothing()
    {
        Upsert(NewVm(new VmKey("default", "a"), phase: Phase.Running, memoryMb: 256, vcpu: 1));

        _ledger.Release("uid-never-admitted").Should().BeNull();

        _ledger.Total(null).Should().Be(new NodeResources(320, 1));
        _ledger.Admitted().Should().BeEmpty();
    }

    [Test]
    public void Admitted_ListsTheAdmissionsWithTheirCharges()
    {
        _ledger.Admit("u1", new VmKey("default", "a"), new NodeResources(100, 1));
        _ledger.Admit("u2", new VmKey("default", "b"), new NodeResources(200, 2));
        _ledger.Release("u1");

        _ledger.Admitted().Should().BeEquivalentTo(new Dictionary<string, (VmKey, NodeResources)>
        {
            ["u2"] = (new VmKey("default", "b"), new NodeResources(200, 2)),
        });
    }

    private void Check(int step)
    {
        MicroVm? Find(VmKey key) => _cache.GetValueOrDefault(key);
        foreach (var except in _cache.Values.Select(v => v.Uid).Concat(_admitted.Keys).Append(null).Distinct())
        {
            var expected = _capacity.AllocatedTotal(_cache.Values, _admitted, except, Find);
            _ledger.Total(except).Should().Be(expected, $"after step {step}, leaving out {except ?? "nothing"}");
        }
    }

    private void Upsert(MicroVm vm)
    {
        var before = _cache.GetValueOrDefault(vm.Key);
        _cache[vm.Key] = vm;
        _ledger.OnEvent(new InformerEvent(before is null ? InformerEventType.Added : InformerEventType.Modified, vm, before));
    }

    private void Delete(MicroVm vm)
    {
        _cache.Remove(vm.Key);
        _ledger.OnEvent(new InformerEvent(InformerEventType.Deleted, vm, vm));
    }

    private void Admit(string uid, VmKey key, Random random)
    {
        var charged = new NodeResources(64 + 64 * random.Next(1, 9), random.Next(1, 5));
        _admitted[uid] = (key, charged);
        _ledger.Admit(uid, key, charged);
    }

    private MicroVm NewVm(VmKey key, Random random) =>
        NewVm(key, Phases[random.Next(Phases.Length)], 64 * random.Next(1, 9), random.Next(1, 5), random.Next(4) == 0 ? "other" : "",
            admittedCondition: random.Next(3) switch { 0 => ConditionStatus.True, 1 => ConditionStatus.False, _ => null });

    private MicroVm NewVm(VmKey key, Phase phase, int memoryMb, int vcpu, string node = "", ConditionStatus? admittedCondition = null) => new()
    {
        Uid = $"uid-{_uids++}",
        Spec = new MicroVmSpec { Namespace = key.Namespace, Id = key.Id, MemoryInMb = memoryMb, Vcpu = vcpu, NodeName = node, Kernel = new KernelSpec { Image = "/k" } },
        ResourceVersion = "1",
        Status = MicroVmStatus.Initial with { Phase = phase, Conditions = Admission(admittedCondition) },
    };

    private MicroVm Changed(MicroVm vm, Random random) => vm with
    {
        ResourceVersion = (long.Parse(vm.ResourceVersion, System.Globalization.CultureInfo.InvariantCulture) + 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
        Spec = random.Next(4) == 0 ? vm.Spec with { MemoryInMb = 64 * random.Next(1, 9) } : vm.Spec,
        Status = vm.Status with
        {
            Phase = Phases[random.Next(Phases.Length)],
            Conditions = random.Next(2) == 0 ? vm.Status.Conditions : Admission(random.Next(2) == 0 ? ConditionStatus.True : ConditionStatus.False),
        },
    };

    private static IReadOnlyList<Condition> Admission(ConditionStatus? status) => status is { } s
        ? Conditions.Set([], AdmissionConditions.Admitted, s, "r", "m", 1, DateTimeOffset.UnixEpoch)
        : [];
}

using Hypercore.Admission;
using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Core.Tests.Reconciliation;

/// <summary>
/// What one reconcile pass allocates for a new VM created Running (issue 15, alloc9): the claim + Provisioning write,
/// admission, the driver's Inspect, Stop (leftovers) and Start through <see cref="InstrumentedDriver"/>, the Running
/// write. Under goal 2's Running load this runs once per Create, and everything it allocates sets how often gen0 runs.
/// The store's writes complete later, as the SQLite writer's do (so the pass suspends where it does in the daemon), and
/// what the store itself allocates is not counted: that is the store's (row9's) part. Counted exactly, on this thread:
/// every continuation runs inline when the test completes a write.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class ReconcilerAllocationTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Test]
    public async Task RunningCreate_OnePass_AllocatesLittleOutsideTheStore()
    {
        await using var node = await PassNode.StartAsync();
        const int warm = 200, measured = 2_000;
        var vms = await node.CreateAsync(warm + measured);
        for (var i = 0; i < warm; i++)
        {
            node.RunPass(vms[i]); // first use of every path (tier-0 code, the dictionaries' first growths)
        }

        node.ResetSteps();
        long total = 0;
        for (var i = warm; i < warm + measured; i++)
        {
            total += node.RunPass(vms[i]);
        }

        var perPass = total / (double)measured;
        TestContext.Out.WriteLine($"allocated per Running pass (outside the store): {perPass:0} bytes");
        foreach (var (step, bytes) in node.Steps)
        {
            TestContext.Out.WriteLine($"  {step,-40} {bytes / (double)measured,8:0} B");
        }

        // Measured: 4,236 bytes before alloc9's changes, 2,220 after: the InstrumentedDriver's tasks around answers given
        // at once, conditions set again unchanged, change functions and the statuses they returned before the standard
        // conditions were added, the start steps' and the start context's leftovers, the claim's and bringing-up's own
        // frames, the record copied with the steps' changes, the pass's second frame (see bench/NOTES.md, alloc9).
        perPass.Should().BeLessThan(2_450, "the pass allocates {0:0} bytes per Running Create outside the store", perPass);
    }

    [Test]
    public async Task RunningCreate_TheInspect_MakesNoTimedSourcePerPass()
    {
        await using var node = await PassNode.StartAsync();
        const int warm = 200, measured = 2_000;
        var vms = await node.CreateAsync(warm + measured);
        for (var i = 0; i < warm; i++)
        {
            node.RunPass(vms[i]);
        }

        node.ResetSteps();
        for (var i = warm; i < warm + measured; i++)
        {
            node.RunPass(vms[i]);
        }

        // From the claim's write to the driver's inspect: the pass's frame (made when it first waits, at the claim) and
        // the inspect's limit. Measured: 684 bytes with a new timed source per inspect (its source and timer-queue timer,
        // 144 bytes), 540 with the limit taken back and reset after an inspect that ended in time (issue 15, twelfth pass).
        var inspect = node.Steps.Single(s => s.Step == "-> driver inspect").Bytes / (double)measured;
        TestContext.Out.WriteLine($"claim -> inspect: {inspect:0} bytes per pass");
        inspect.Should().BeLessThan(600, "the inspect's time limit is reused, not made per pass ({0:0} bytes)", inspect);
    }

    [Test]
    public async Task StoppedCreate_OnePass_AllocatesLittleOutsideTheStore()
    {
        await using var node = await PassNode.StartAsync();
        const int warm = 200, measured = 2_000;
        var vms = await node.CreateAsync(warm + measured, DesiredState.Stopped);
        for (var i = 0; i < warm; i++)
        {
            node.RunPass(vms[i], ReconcileOutcome.Done);
        }

        long total = 0;
        for (var i = warm; i < warm + measured; i++)
        {
            total += node.RunPass(vms[i], ReconcileOutcome.Done);
        }

        var perPass = total / (double)measured;
        TestContext.Out.WriteLine($"allocated per Stopped pass (outside the store): {perPass:0} bytes");

        // Measured: 1,836 bytes before alloc9, 1,276 after (the availability's and the inspect's tasks, the capability
        // check's empty list, the Stopped write's change function, closure and extra status, the pass's second frame).
        perPass.Should().BeLessThan(1_400, "the pass allocates {0:0} bytes per Stopped Create outside the store", perPass);
    }

    [Test]
    [Explicit("a profile, not a check")]
    public async Task RunningCreate_Profile_ByType()
    {
        await using var node = await PassNode.StartAsync();
        const int warm = 200, measured = 30_000;
        var vms = await node.CreateAsync(warm + measured);
        for (var i = 0; i < warm; i++)
        {
            node.RunPass(vms[i]);
        }

        using var ticks = new AllocationTicks();
        for (var i = warm; i < warm + measured; i++)
        {
            node.RunPass(vms[i]);
        }

        foreach (var (type, bytes) in ticks.ByType.OrderByDescending(p => p.Value))
        {
            TestContext.Out.WriteLine($"  {type,-90} {bytes / (double)measured,8:0} B");
        }
    }

    private sealed class AllocationTicks : System.Diagnostics.Tracing.EventListener
    {
        public Dictionary<string, long> ByType { get; } = [];

        protected override void OnEventSourceCreated(System.Diagnostics.Tracing.EventSource source)
        {
            if (source.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(source, System.Diagnostics.Tracing.EventLevel.Verbose, (System.Diagnostics.Tracing.EventKeywords)0x1);
            }
        }

        protected override void OnEventWritten(System.Diagnostics.Tracing.EventWrittenEventArgs e)
        {
            if (e.EventName != "GCAllocationTick_V4" || e.Payload is null)
            {
                return;
            }

            var type = (string)e.Payload[e.PayloadNames!.IndexOf("TypeName")]!;
            var amount = Convert.ToInt64(e.Payload[e.PayloadNames!.IndexOf("AllocationAmount64")]);
            lock (ByType)
            {
                ByType[type] = ByType.GetValueOrDefault(type) + amount;
            }
        }
    }

    /// <summary>
    /// A reconciler with admission over the in-memory store, a driver that allocates nothing, and a store wrapper whose
    /// writes wait for the test (<see cref="RunPass"/> completes them on its own thread).
    /// </summary>
    private sealed class PassNode : IAsyncDisposable
    {
        private readonly InMemoryStore _inner = new();
        private readonly DeferredStore _store;
        private readonly Cache _cache = new();
        private MicroVmInformer _informer = null!;
        private AdmissionStep _admission = null!;
        private Reconciler _reconciler = null!;

        private PassNode()
        {
            _store = new DeferredStore(_inner);
        }

        public StepBytes StepLog { get; } = new();

        public IEnumerable<(string Step, long Bytes)> Steps => StepLog.Totals;

        public void ResetSteps() => StepLog.Reset();

        public static async Task<PassNode> StartAsync()
        {
            var node = new PassNode();
            var time = TimeProvider.System;
            var reconcilerOptions = Options.Create(new ReconcilerOptions { NodeName = "node-a" });
            var capacity = new NodeCapacity(new Host(), Options.Create(new CapacityOptions { ReservedMemoryMb = 0 }), reconcilerOptions);
            node._informer = new MicroVmInformer(node._inner, time, Options.Create(new InformerOptions { ResyncInterval = TimeSpan.FromHours(1) }),
                NullLogger<MicroVmInformer>.Instance);
            await node._informer.StartAsync(CancellationToken.None);
            await node._informer.Synced.WaitAsync(Patience);
            node._admission = new AdmissionStep(capacity, node._informer, time, NullLogger<AdmissionStep>.Instance);
            var driver = new QuietDriver(node.StepLog);
            node._store.Log = node.StepLog;
            node._reconciler = new Reconciler(node._store, new DriverRegistry([driver], "quiet"), time, reconcilerOptions,
                NullLogger<Reconciler>.Instance, [node._admission], cache: node._cache, versions: node._store);
            return node;
        }

        public async Task<MicroVm[]> CreateAsync(int count, DesiredState state = DesiredState.Running)
        {
            var vms = new MicroVm[count];
            for (var i = 0; i < count; i++)
            {
                vms[i] = await _inner.CreateAsync(new MicroVmSpec
                {
                    Id = $"vm-{i:D5}", State = state, MemoryInMb = 128, Vcpu = 1, Kernel = new KernelSpec { Image = "/k" },
                });
                _cache.Put(vms[i]);
            }

            // The informer follows the store on its own thread. Until it has seen every VM, the passes race it to insert
            // the new uids into the ledger of admission (AllocationLedger), and whichever thread inserts a uid first
            // pays the dictionaries' growth: on a loaded machine the measured thread paid it in one whole-project run
            // (the bound failed once, then never in isolation). So the passes start when the informer has every record.
            var deadline = DateTime.UtcNow + Patience;
            while (vms.Any(vm => _informer.Get(vm.Key) is null))
            {
                DateTime.UtcNow.Should().BeBefore(deadline, "the informer sees the created VMs");
                await Task.Delay(10);
            }

            return vms;
        }

        /// <summary>One pass for a new Running VM, its writes completed on this thread; the bytes it allocated outside the store.</summary>
        public long RunPass(MicroVm vm, ReconcileOutcome expected = ReconcileOutcome.Poll)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            StepLog.Begin(before);
            _store.StoreBytes = 0;
            var pass = _reconciler.ReconcilePassAsync(vm.Key, CancellationToken.None);
            while (_store.CompleteNext())
            {
            }

            var after = GC.GetAllocatedBytesForCurrentThread();
            StepLog.Mark("the Running write's completion -> pass end", after);
            var passed = pass.IsCompleted ? pass.Result : default;
            pass.IsCompleted.Should().BeTrue("every write was completed");
            passed.Outcome.Should().Be(expected);
            return after - before - _store.StoreBytes;
        }

        public async ValueTask DisposeAsync()
        {
            _admission.Dispose();
            await _informer.StopAsync(CancellationToken.None);
            _informer.Dispose();
        }
    }

    /// <summary>Bytes allocated between named points of a pass (driver calls, store writes), summed over passes.</summary>
    private sealed class StepBytes
    {
        private readonly Dictionary<string, long> _totals = [];
        private readonly List<string> _order = [];
        private long _last;
        private long _excluded;

        public IEnumerable<(string, long)> Totals => _order.Select(s => (s, _totals[s]));

        public void Reset()
        {
            _totals.Clear();
            _order.Clear();
        }

        public void Begin(long now) => _last = now;

        /// <summary>The bytes since the last mark (less what was excluded since) go to <paramref name="step"/>.</summary>
        public void Mark(string step, long now)
        {
            if (!_totals.ContainsKey(step))
            {
                _order.Add(step);
                _totals[step] = 0;
            }

            _totals[step] += now - _last - _excluded;
            _excluded = 0;
            _last = now;
        }

        public void Exclude(long bytes) => _excluded += bytes;
    }

    /// <summary>
    /// The in-memory store with the SQLite store's shape: claim + status is one write, and every write completes later
    /// (<see cref="CompleteNext"/>), so the pass suspends at each as it does on the writer thread.
    /// </summary>
    private sealed class DeferredStore(InMemoryStore inner) : IMicroVmStore, IResourceVersionCheck
    {
        private readonly Queue<(TaskCompletionSource<MicroVm> Done, Func<Task<MicroVm>> Write)> _pending = new();

        public StepBytes Log { get; set; } = null!;

        /// <summary>Bytes the store allocated (the wrapper, the inner store's writes): not the pass's.</summary>
        public long StoreBytes { get; set; }

        public string Name => "deferred";

        public bool ClaimWithStatusIsOneWrite => true;

        public bool CompleteNext()
        {
            if (!_pending.TryDequeue(out var next))
            {
                return false;
            }

            var before = GC.GetAllocatedBytesForCurrentThread();
            var result = next.Write().GetAwaiter().GetResult();
            var spent = GC.GetAllocatedBytesForCurrentThread() - before;
            StoreBytes += spent;
            Log.Exclude(spent);
            next.Done.SetResult(result); // the pass goes on here, on this thread
            return true;
        }

        private Task<MicroVm> Defer(string step, Func<Task<MicroVm>> write)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            Log.Mark(step, before);
            var done = new TaskCompletionSource<MicroVm>();
            _pending.Enqueue((done, write));
            var spent = GC.GetAllocatedBytesForCurrentThread() - before;
            StoreBytes += spent;
            Log.Exclude(spent);
            return done.Task;
        }

        public Task<MicroVm> ClaimWithStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
            Defer("-> claim + Provisioning write", () => inner.ClaimWithStatusAsync(key, status, expectedResourceVersion, cancellationToken));

        public Task<MicroVm> UpdateStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
            Defer("-> status write", () => inner.UpdateStatusAsync(key, status, expectedResourceVersion, cancellationToken));

        public Task<MicroVm> ClaimAsync(VmKey key, CancellationToken cancellationToken = default) =>
            Defer("-> claim", () => inner.ClaimAsync(key, cancellationToken));

        public ValueTask<bool> IsCurrentAsync(VmKey key, string resourceVersion, CancellationToken cancellationToken = default) =>
            throw new InvalidOperationException("a new VM's pass needs no version check");

        public Task<MicroVm?> GetAsync(VmKey key, CancellationToken cancellationToken = default) => inner.GetAsync(key, cancellationToken);

        public Task<MicroVm?> GetByUidAsync(string uid, CancellationToken cancellationToken = default) => inner.GetByUidAsync(uid, cancellationToken);

        public Task<IReadOnlyList<MicroVm>> ListAsync(string? @namespace = null, CancellationToken cancellationToken = default) =>
            inner.ListAsync(@namespace, cancellationToken);

        public Task<MicroVm> CreateAsync(MicroVmSpec spec, CancellationToken cancellationToken = default) => inner.CreateAsync(spec, cancellationToken);

        public Task<MicroVm> UpdateSpecAsync(VmKey key, MicroVmSpec spec, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
            inner.UpdateSpecAsync(key, spec, expectedResourceVersion, cancellationToken);

        public Task<MicroVm> MarkForDeletionAsync(VmKey key, CancellationToken cancellationToken = default) => inner.MarkForDeletionAsync(key, cancellationToken);

        public Task RemoveAsync(VmKey key, CancellationToken cancellationToken = default) => inner.RemoveAsync(key, cancellationToken);

        public IAsyncEnumerable<StoreEvent> WatchAsync(CancellationToken cancellationToken = default) => inner.WatchAsync(cancellationToken);
    }

    /// <summary>A driver whose answers are made once (as the benchmark's no-op driver's): it allocates nothing per call.</summary>
    private sealed class QuietDriver(StepBytes log) : IHypervisorDriver
    {
        private static readonly Task<DriverAvailability> Available = Task.FromResult(DriverAvailability.Ok("quiet"));
        private static readonly Task<VmRuntimeInfo> Nothing = Task.FromResult(VmRuntimeInfo.NotFound(""));
        private static readonly Task<VmRuntimeInfo> Running = Task.FromResult(new VmRuntimeInfo
        {
            Uid = "", State = LiveState.Running, Pid = 1, ConsoleLogPath = "/dev/null",
            BootTime = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), Detail = "quiet",
        });

        public string Name => "quiet";

        public DriverCapabilities Capabilities => DriverCapabilities.Pause | DriverCapabilities.GracefulStop;

        public Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default)
        {
            log.Mark("-> driver availability", GC.GetAllocatedBytesForCurrentThread());
            return Available;
        }

        public Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<VmRuntimeInfo>>([]);

        public Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default)
        {
            log.Mark("-> driver inspect", GC.GetAllocatedBytesForCurrentThread());
            return Nothing;
        }

        public Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default)
        {
            log.Mark("-> driver start", GC.GetAllocatedBytesForCurrentThread());
            return Running;
        }

        public Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default)
        {
            log.Mark("-> driver stop (leftovers)", GC.GetAllocatedBytesForCurrentThread());
            return Task.CompletedTask;
        }

        public Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default) => Task.CompletedTask;

        public string ConsoleLogPath(MicroVm vm) => "/dev/null";
    }

    private sealed class Cache : IMicroVmCache
    {
        private readonly Dictionary<VmKey, MicroVm> _items = [];

        public void Put(MicroVm vm) => _items[vm.Key] = vm;

        public MicroVm? Get(VmKey key) => _items.GetValueOrDefault(key);
    }

    private sealed class Host : IHostResources
    {
        public long MemoryMb => 1 << 30;

        public int Cpus => 1 << 16;
    }
}

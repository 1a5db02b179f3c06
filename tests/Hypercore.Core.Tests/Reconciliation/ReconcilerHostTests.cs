using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Reconciliation;

/// <summary>The loop around the reconciler: watch, queue, workers, backoff, adoption.</summary>
public class ReconcilerHostTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private FakeTimeProvider _time = null!;
    private ReconcilerHost _host = null!;
    private MicroVmInformer _informer = null!;
    private ReconcilerOptions _options = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver();
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
        _options = new ReconcilerOptions
        {
            NodeName = "node-a", Workers = 4, BackoffBase = TimeSpan.FromSeconds(1), BackoffCap = TimeSpan.FromSeconds(60),
            PollInterval = TimeSpan.FromSeconds(2), ResyncInterval = TimeSpan.FromHours(1),
        };
    }

    [TearDown]
    public async Task TearDown()
    {
        foreach (var gate in _driver.StartGates.Values)
        {
            gate.TrySetResult();
        }

        if (_host is not null)
        {
            await _host.StopAsync(CancellationToken.None);
            _host.Dispose();
        }

        if (_informer is not null)
        {
            await _informer.StopAsync(CancellationToken.None);
            _informer.Dispose();
        }
    }

    private async Task StartHost(params IHypervisorDriver[] more)
    {
        var registry = new DriverRegistry([_driver, .. more], "fake");
        var options = Options.Create(_options);
        var reconciler = new Reconciler(_store, registry, _time, options, NullLogger<Reconciler>.Instance);
        _informer = new MicroVmInformer(_store, _time, Options.Create(new InformerOptions()), NullLogger<MicroVmInformer>.Instance);
        await _informer.StartAsync(CancellationToken.None);
        _host = new ReconcilerHost(_informer, registry, reconciler, options, _time, NullLogger<ReconcilerHost>.Instance);
        await _host.StartAsync(CancellationToken.None);
        await _host.Ready.WaitAsync(Patience);
    }

    private static MicroVmSpec Spec(string id) => new() { Id = id, Kernel = new KernelSpec { Image = "/k" } };

    private async Task<MicroVm> WaitFor(VmKey key, Func<MicroVm, bool> done)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (true)
        {
            var vm = await _store.GetAsync(key);
            if (vm is not null && done(vm))
            {
                return vm;
            }

            await Task.Delay(10, cts.Token);
        }
    }

    [Test]
    public async Task CreatedRecord_IsPickedUpFromTheWatch_AndRuns()
    {
        await StartHost();

        var vm = await _store.CreateAsync(Spec("a"));

        var running = await WaitFor(vm.Key, v => v.Status.Phase == Phase.Running);
        running.Status.Pid.Should().NotBeNull();
    }

    [Test]
    public async Task OneBrokenVm_NeverStallsTheOthers()
    {
        _driver.StartGates["hung"] = new TaskCompletionSource(); // never completes on its own
        _driver.StartFailures["broken"] = new DriverException("HypervisorError", "boom");
        await StartHost();

        var hung = await _store.CreateAsync(Spec("hung"));
        var broken = await _store.CreateAsync(Spec("broken"));
        var others = new List<MicroVm>();
        for (var i = 0; i < 10; i++)
        {
            others.Add(await _store.CreateAsync(Spec($"ok-{i}")));
        }

        foreach (var vm in others)
        {
            await WaitFor(vm.Key, v => v.Status.Phase == Phase.Running);
        }

        (await _store.GetAsync(broken.Key))!.Status.Phase.Should().Be(Phase.Failed);
        (await _store.GetAsync(hung.Key))!.Status.Phase.Should().Be(Phase.Provisioning);
    }

    [Test]
    public async Task Failure_IsRetriedWithGrowingBackoff_ThenSucceeds()
    {
        _driver.StartFailures["a"] = new DriverException("HypervisorError", "boom");
        await StartHost();
        var vm = await _store.CreateAsync(Spec("a"));
        await WaitFor(vm.Key, v => v.Status.Phase == Phase.Failed);
        await WaitUntil(() => _host.Queue.Failures(vm.Key) == 1);
        _driver.CallCount("start").Should().Be(1);

        _time.Advance(TimeSpan.FromMilliseconds(999));
        await Task.Delay(100);
        _driver.CallCount("start").Should().Be(1, "the first retry waits the base delay of 1 s");

        _time.Advance(TimeSpan.FromMilliseconds(1));
        await WaitUntil(() => _driver.CallCount("start") == 2);
        await WaitUntil(() => _host.Queue.Failures(vm.Key) == 2);

        _time.Advance(TimeSpan.FromMilliseconds(1999));
        await Task.Delay(100);
        _driver.CallCount("start").Should().Be(2, "the second retry waits twice as long");

        _driver.StartFailures.Clear();
        _time.Advance(TimeSpan.FromMilliseconds(1));
        await WaitFor(vm.Key, v => v.Status.Phase == Phase.Running);
        await WaitUntil(() => _host.Queue.Failures(vm.Key) == 0);
    }

    [Test]
    public async Task ManyChangesToOneKey_AreNeverReconciledConcurrently_AndCollapse()
    {
        _driver.StartGates["a"] = new TaskCompletionSource();
        await StartHost();
        var vm = await _store.CreateAsync(Spec("a"));
        await WaitUntil(() => _driver.CallCount("start") == 1);

        // While the start is in flight, write the record 50 times: each write is a watch event for the same key.
        for (var i = 0; i < 50; i++)
        {
            var current = (await _store.GetAsync(vm.Key))!;
            await _store.UpdateSpecAsync(vm.Key, current.Spec with { Labels = new Dictionary<string, string> { ["n"] = $"{i}" } }, current.ResourceVersion);
        }

        var before = _host.Completed;
        _driver.StartGates["a"].SetResult();
        await WaitFor(vm.Key, v => v.Status.Phase == Phase.Running && v.Status.ObservedGeneration == v.Generation);
        await Task.Delay(200);

        _driver.MaxConcurrentPerVm.Should().Be(1);
        (_host.Completed - before).Should().BeLessThan(5, "50 queued events for one key collapse into a few passes");
    }

    [Test]
    public async Task AtStart_RunningVmsAreAdopted_NotRestarted()
    {
        var vm = _store.Seed(new MicroVm
        {
            Uid = "u-1", Spec = Spec("a"), ResourceVersion = "0", Claimed = true,
            Status = MicroVmStatus.Initial with { Phase = Phase.Running, Pid = 777, Node = "node-a" },
        });
        _driver.SetLive("u-1", LiveState.Running, pid: 777);

        await StartHost();
        await WaitUntil(() => _driver.CallCount("inspect") >= 1);
        var after = await WaitFor(vm.Key, v => v.Status.FindCondition(Conditions.Ready) is not null);

        _driver.CallCount("start").Should().Be(0);
        _driver.CallCount("stop").Should().Be(0);
        after.Status.Pid.Should().Be(777);
        after.Status.Phase.Should().Be(Phase.Running);
    }

    [Test]
    public async Task LiveStateIsPolled_SoAVmThatDiesUnnoticedIsRestarted()
    {
        await StartHost();
        var vm = await _store.CreateAsync(Spec("a"));
        await WaitFor(vm.Key, v => v.Status.Phase == Phase.Running);
        _driver.SetLive(vm.Uid, LiveState.Exited, ExitKind.Crashed);

        _time.Advance(_options.PollInterval);

        var restarted = await WaitFor(vm.Key, v => v.Status.RestartCount == 1 && v.Status.Phase == Phase.Running);
        _driver.CallCount("start").Should().Be(2);
        restarted.Status.Pid.Should().Be(_driver.Live(vm.Uid)!.Pid);
    }

    [Test]
    public async Task LiveStateChange_ReportedByTheDriver_IsReconciledAtOnceWithoutWaitingForThePoll()
    {
        _options.PollInterval = TimeSpan.FromHours(1); // the fake clock never gets there: only the driver's report can act
        await StartHost();
        var vm = await _store.CreateAsync(Spec("a"));
        await WaitFor(vm.Key, v => v.Status.Phase == Phase.Running);
        var firstPid = _driver.Live(vm.Uid)!.Pid;
        _driver.SetLive(vm.Uid, LiveState.Exited, ExitKind.Crashed);

        _driver.RaiseLiveStateChanged("no-such-uid"); // a process this node has no record for: ignored
        _driver.RaiseLiveStateChanged(vm.Uid);

        var restarted = await WaitFor(vm.Key, v => v.Status.RestartCount == 1 && v.Status.Phase == Phase.Running);
        _driver.CallCount("start").Should().Be(2);
        restarted.Status.Pid.Should().NotBe(firstPid).And.Be(_driver.Live(vm.Uid)!.Pid);
    }

    [Test]
    public async Task LiveStateChanges_SubscribedWhileRunning_UnsubscribedWhenTheHostStops()
    {
        _driver.HasLiveStateSubscribers.Should().BeFalse();
        await StartHost();
        _driver.HasLiveStateSubscribers.Should().BeTrue();

        await _host.StopAsync(CancellationToken.None);

        _driver.HasLiveStateSubscribers.Should().BeFalse("a stopped host leaves no handler on a driver that outlives it");
    }

    [Test]
    public async Task LiveStateChange_FoundByUid_QueuesThatVmOnly_UnknownAndDeletedUidsAreIgnored()
    {
        _options.PollInterval = TimeSpan.FromHours(1); // only the reports below queue anything
        _options.Workers = 1; // one worker, holding b's inspection below, so whatever a report queues stays in the queue
        await StartHost();
        var a = await _store.CreateAsync(Spec("a"));
        var b = await _store.CreateAsync(Spec("b"));
        var gone = await _store.CreateAsync(Spec("gone"));
        foreach (var vm in new[] { a, b, gone })
        {
            await WaitFor(vm.Key, v => v.Status.Phase == Phase.Running);
        }

        await _store.MarkForDeletionAsync(gone.Key);
        await WaitUntil(() => _informer.Get(gone.Key) is null); // the informer saw the record removed

        // Hold the worker inside b's reconcile: everything queued before it is done, anything queued after waits.
        var hold = new TaskCompletionSource();
        _driver.InspectGates["b"] = hold;
        var inspectedB = Inspections("b");
        _driver.RaiseLiveStateChanged(b.Uid);
        await WaitUntil(() => Inspections("b") > inspectedB);
        await WaitUntil(() => _host.Queue.Depth == 0);

        _driver.RaiseLiveStateChanged("no-such-uid");
        _driver.RaiseLiveStateChanged(gone.Uid);
        _host.Queue.Depth.Should().Be(0, "a uid with no record on this node queues nothing");

        var inspectedA = Inspections("a");
        _driver.RaiseLiveStateChanged(a.Uid);
        _host.Queue.Depth.Should().Be(1, "a's report queues a");

        hold.SetResult();
        await WaitUntil(() => Inspections("a") > inspectedA);
    }

    private int Inspections(string id) => _driver.Calls.Count(c => c == "inspect:" + id);

    [Test]
    public async Task FiftyCreatesAtOnce_WithTheDefaultWorkerCount_AreAllStartingTogether()
    {
        _options.Workers = ReconcilerOptions.DefaultWorkers;
        for (var i = 0; i < 50; i++)
        {
            _driver.StartGates[$"vm-{i}"] = new TaskCompletionSource(); // a slow hypervisor start-up
        }

        await StartHost();
        var created = new List<MicroVm>();
        for (var i = 0; i < 50; i++)
        {
            created.Add(await _store.CreateAsync(Spec($"vm-{i}")));
        }

        await WaitUntil(() => _driver.MaxConcurrentStarts == 50);
        foreach (var gate in _driver.StartGates.Values)
        {
            gate.TrySetResult();
        }

        foreach (var vm in created)
        {
            await WaitFor(vm.Key, v => v.Status.Phase == Phase.Running);
        }

        _driver.MaxConcurrentPerVm.Should().Be(1, "more workers never work one VM twice at once");
    }

    [Test]
    public async Task FourFrozenHypervisors_DoNotStallAFifthVmsCreateOrDelete_EvenWithFourWorkers()
    {
        _options.Workers = 4;
        _options.InspectTimeout = TimeSpan.FromSeconds(5);
        for (var i = 0; i < 4; i++)
        {
            var uid = $"u-frozen-{i}";
            _store.Seed(new MicroVm
            {
                Uid = uid, Spec = Spec($"frozen-{i}"), ResourceVersion = "0", Claimed = true,
                Status = MicroVmStatus.Initial with { Phase = Phase.Running, Pid = 900 + i, Node = "node-a" },
            });
            _driver.SetLive(uid, LiveState.Running, pid: 900 + i);
            _driver.InspectGates[$"frozen-{i}"] = new TaskCompletionSource(); // SIGSTOPped: never answers
        }

        await StartHost();
        await WaitUntil(() => _driver.CallCount("inspect") >= 4); // every worker is waiting on a frozen hypervisor
        var fifth = await _store.CreateAsync(Spec("fifth"));

        // Each inspection gives up after the inspect timeout, which frees the workers for the new VM.
        await AdvanceUntil(() => _store.GetAsync(fifth.Key).Result?.Status.Phase == Phase.Running, _options.InspectTimeout);
        await _store.MarkForDeletionAsync(fifth.Key);
        await AdvanceUntil(() => _store.GetAsync(fifth.Key).Result is null, _options.InspectTimeout);

        _driver.Calls.Should().Contain("cleanup:fifth");
        _driver.CallCount("stop(0)").Should().Be(1, "the frozen VMs are Unknown, not dead: only the fifth's pre-start stop ran");
    }

    [Test]
    public async Task Adoption_ADriverHangingWhileListing_DoesNotHoldUpReconcilingOtherVms()
    {
        var slow = new FakeDriver("slow") { ListGate = new TaskCompletionSource() };
        var adopted = _store.Seed(new MicroVm
        {
            Uid = "u-1", Spec = Spec("a"), ResourceVersion = "0", Claimed = true,
            Status = MicroVmStatus.Initial with { Phase = Phase.Running, Pid = 777, Node = "node-a" },
        });
        _driver.SetLive("u-1", LiveState.Running, pid: 777);
        var onSlow = await _store.CreateAsync(Spec("b") with { Provider = "slow" });

        await StartHost(slow);

        await WaitFor(adopted.Key, v => v.Status.FindCondition(Conditions.Ready)?.Status == ConditionStatus.True);
        await WaitFor(onSlow.Key, v => v.Status.Phase == Phase.Running);
        _host.Adopted.IsCompleted.Should().BeFalse("the slow driver is still listing");
        _driver.CallCount("start").Should().Be(0, "the adopted VM was not restarted");

        // The VMs above do not wait for adoption, so on a loaded machine the slow driver may not have been asked yet;
        // its timeout starts on the fake clock only then, and advancing the clock before that skipped it.
        await slow.ListCalled.WaitAsync(Patience);
        _time.Advance(_options.AdoptionTimeout);
        await _host.Adopted.WaitAsync(Patience);
    }

    /// <summary>Steps the fake clock until <paramref name="done"/> holds, giving the workers time between steps.</summary>
    private async Task AdvanceUntil(Func<bool> done, TimeSpan step)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (!done())
        {
            _time.Advance(step);
            await Task.Delay(50, cts.Token);
        }
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (!condition())
        {
            await Task.Delay(10, cts.Token);
        }
    }
}

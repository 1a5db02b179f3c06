using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Reconciliation;

/// <summary>
/// Issue 15 (fifth pass): the inspect's limit is one token source, cancelled at the time limit or with the caller's
/// token. A hung hypervisor past the limit is Unknown (ReconcilerTests); the caller's cancellation ends the pass as
/// cancelled, never as Unknown, and reaches the driver.
/// </summary>
public class ReconcilerInspectLimitTests
{
    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private FakeTimeProvider _time = null!;
    private Reconciler _reconciler = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver();
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 15, 30, 0, TimeSpan.Zero));
        _reconciler = new Reconciler(_store, new DriverRegistry([_driver], "fake"), _time,
            Options.Create(new ReconcilerOptions { NodeName = "node-a", StopGracePeriod = TimeSpan.FromSeconds(7) }),
            NullLogger<Reconciler>.Instance);
    }

    [Test]
    public async Task Inspect_CallerCancelsWhileTheHypervisorHangs_PassEndsCancelledAndWritesNothing()
    {
        var vm = await _store.CreateAsync(new MicroVmSpec { Id = "a", Kernel = new KernelSpec { Image = "/k" } });
        (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Poll);
        var running = (await _store.GetAsync(vm.Key))!;
        var gate = new TaskCompletionSource(); // never answers
        _driver.InspectGates["a"] = gate;
        var inspections = _driver.CallCount("inspect");
        using var cts = new CancellationTokenSource();

        var pass = _reconciler.ReconcileAsync(vm.Key, cts.Token);
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (_driver.CallCount("inspect") == inspections && waited.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(5);
        }

        pass.IsCompleted.Should().BeFalse("the inspection waits for the hypervisor");
        await cts.CancelAsync();

        var act = async () => await pass.WaitAsync(TimeSpan.FromSeconds(20));
        await act.Should().ThrowAsync<OperationCanceledException>("a cancelled pass is not an unknown state");
        var after = (await _store.GetAsync(vm.Key))!;
        after.ResourceVersion.Should().Be(running.ResourceVersion, "nothing was written");
        after.Status.FindCondition(Conditions.Unresponsive).Should().BeNull();
        gate.Task.IsCompleted.Should().BeFalse();
        _driver.MaxConcurrentPerVm.Should().Be(1);
    }

    [Test]
    public async Task Inspect_CallerAlreadyCancelled_PassEndsCancelled()
    {
        var vm = await _store.CreateAsync(new MicroVmSpec { Id = "a", Kernel = new KernelSpec { Image = "/k" } });
        (await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Poll);
        _driver.InspectGates["a"] = new TaskCompletionSource();

        var act = async () => await _reconciler.ReconcileAsync(vm.Key, new CancellationToken(canceled: true)).WaitAsync(TimeSpan.FromSeconds(20));

        await act.Should().ThrowAsync<OperationCanceledException>();
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Core.Tests.Fakes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Telemetry.Tests.Tracing;

/// <summary>
/// A reconcile is one trace: the "reconcile" span with a "driver.&lt;op&gt;" child span per driver call, made by the
/// InstrumentedDriver that DriverRegistry wraps around every driver. Listened to in-process (System.Diagnostics),
/// so this proves what the core emits whatever exporter the host adds.
/// </summary>
[NonParallelizable]
public class ReconcileTracingTests
{
    private InMemoryStore _store = null!;
    private FakeDriver _driver = null!;
    private Reconciler _reconciler = null!;
    private ActivityListener _listener = null!;
    private ConcurrentQueue<Activity> _stopped = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _driver = new FakeDriver("fake");
        _reconciler = new Reconciler(
            _store, new DriverRegistry([_driver], "fake"), TimeProvider.System,
            Options.Create(new ReconcilerOptions { NodeName = "node-a" }), NullLogger<Reconciler>.Instance);
        _stopped = new ConcurrentQueue<Activity>();
        var stopped = _stopped;
        _listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == HypercoreTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    [TearDown]
    public void TearDown() => _listener.Dispose();

    private static MicroVmSpec Spec(string id) => new() { Id = id, Namespace = "tracing", Kernel = new KernelSpec { Image = "/k" } };

    /// <summary>The spans of one reconcile of one VM (other tests' spans are filtered out by the microvm tag).</summary>
    private (Activity Reconcile, List<Activity> Children) SpansOf(MicroVm vm)
    {
        var all = _stopped.ToList();
        var reconcile = all.Last(a => a.OperationName == "reconcile" && (string?)a.GetTagItem("microvm") == vm.Key.ToString());
        var children = all.Where(a => a.ParentSpanId == reconcile.SpanId).ToList();
        return (reconcile, children);
    }

    [Test]
    public async Task Reconcile_NewVm_DriverCallsAreChildSpansOfTheReconcileSpan()
    {
        var vm = await _store.CreateAsync(Spec("a"));

        await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        var (reconcile, children) = SpansOf(vm);
        reconcile.Parent.Should().BeNull("a reconcile started by the work loop is a trace of its own");
        children.Select(c => c.OperationName).Should().Equal("driver.check_availability", "driver.inspect", "driver.stop", "driver.start");
        children.Should().OnlyContain(c => c.TraceId == reconcile.TraceId);
        children.Should().OnlyContain(c => (string?)c.GetTagItem(InstrumentedDriver.TagProvider) == "fake");
        children.Where(c => c.OperationName != "driver.check_availability")
            .Should().OnlyContain(c => (string?)c.GetTagItem(InstrumentedDriver.TagUid) == vm.Uid);
        children.Single(c => c.OperationName == "driver.start").GetTagItem("hypercore.live_state").Should().Be("Running");
        children.Should().OnlyContain(c => c.Status == ActivityStatusCode.Unset);
    }

    [Test]
    public async Task Reconcile_DriverStartFails_StartSpanIsAnErrorAndTheErrorIsCounted()
    {
        var vm = await _store.CreateAsync(Spec("broken"));
        _driver.StartFailures["broken"] = new DriverException("KernelNotFound", "kernel /k does not exist");
        var errors = new ConcurrentQueue<(long Value, Dictionary<string, object?> Tags)>();
        using var meters = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == HypercoreTelemetry.Name && instrument.Name == "hypercore.driver.errors")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        meters.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            errors.Enqueue((value, tags.ToArray().ToDictionary(t => t.Key, t => t.Value))));
        meters.Start();

        var result = await _reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        result.Outcome.Should().Be(ReconcileOutcome.Backoff);
        var start = SpansOf(vm).Children.Single(c => c.OperationName == "driver.start");
        start.Status.Should().Be(ActivityStatusCode.Error);
        start.StatusDescription.Should().Be("kernel /k does not exist");
        start.Events.Should().Contain(e => e.Name == "exception");
        errors.Should().ContainSingle(e => (string?)e.Tags["provider"] == "fake")
            .Which.Should().Match<(long Value, Dictionary<string, object?> Tags)>(e =>
                e.Value == 1 && (string?)e.Tags["operation"] == "start" && (string?)e.Tags["reason"] == "KernelNotFound");
    }

    [Test]
    public async Task InstrumentedDriver_CancelledByTheCaller_IsNotCountedAsADriverError()
    {
        var vm = await _store.CreateAsync(Spec("slow"));
        var gate = new TaskCompletionSource();
        _driver.StartGates["slow"] = gate;
        var driver = new InstrumentedDriver(_driver);
        var counted = 0L;
        using var meters = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == HypercoreTelemetry.Name && instrument.Name == "hypercore.driver.errors")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        meters.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            if (tags.ToArray().Any(t => t.Key == "provider" && (string?)t.Value == "fake"))
            {
                Interlocked.Add(ref counted, value);
            }
        });
        meters.Start();
        using var cts = new CancellationTokenSource();

        var start = driver.StartAsync(vm, cts.Token);
        await cts.CancelAsync();

        await FluentActions.Awaiting(() => start).Should().ThrowAsync<OperationCanceledException>();
        Interlocked.Read(ref counted).Should().Be(0);
        _stopped.Should().Contain(a => a.OperationName == "driver.start" && (bool?)a.GetTagItem("hypercore.cancelled") == true);
    }

    [Test]
    public void DriverRegistry_WrapsEachDriverOnce()
    {
        var wrapped = new InstrumentedDriver(_driver);

        var registry = new DriverRegistry([wrapped], "fake");

        registry.TryGet("", out var resolved).Should().BeTrue();
        resolved.Should().BeSameAs(wrapped);
        new InstrumentedDriver(wrapped).Inner.Should().BeSameAs(_driver, "wrapping a wrapper would double every span");
        new DriverRegistry([_driver], "fake").All.Single().Should().BeOfType<InstrumentedDriver>()
            .Which.Inner.Should().BeSameAs(_driver);
    }
}

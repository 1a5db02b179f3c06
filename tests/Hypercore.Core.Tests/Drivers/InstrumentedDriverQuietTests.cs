using System.Diagnostics.Metrics;
using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Telemetry;

namespace Hypercore.Core.Tests.Drivers;

/// <summary>
/// <see cref="InstrumentedDriver"/> with nobody listening to its spans (issue 15, alloc9): a call the driver answers at
/// once costs nothing (the driver's own task comes back), and every failure still counts in
/// <see cref="HypercoreTelemetry.DriverErrors"/>, whether thrown at once, returned as a failed task or failing later.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class InstrumentedDriverQuietTests
{
    private static MicroVm Vm(string id) => new()
    {
        Uid = "uid-" + id, ResourceVersion = "1", Spec = new MicroVmSpec { Id = id, Kernel = new KernelSpec { Image = "/k" } },
    };

    [Test]
    public async Task Calls_AnsweredAtOnce_ReturnTheDriversOwnTasks()
    {
        var inner = new AnsweringDriver();
        var driver = new InstrumentedDriver(inner);
        var vm = Vm("a");

        driver.CheckAvailabilityAsync().Should().BeSameAs(inner.Availability);
        driver.InspectAsync(vm).Should().BeSameAs(inner.Answer);
        driver.StartAsync(vm).Should().BeSameAs(inner.Answer);
        driver.StartAsync(new Hypercore.Reconciliation.StartContext(vm)).Should().BeSameAs(inner.Answer);
        driver.ListAsync().Should().BeSameAs(inner.Listed);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            _ = driver.InspectAsync(vm);
            _ = driver.CheckAvailabilityAsync();
            _ = driver.StopAsync(vm, TimeSpan.Zero);
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0, "nothing is added to an answer the driver gave at once");
    }

    [Test]
    public async Task Calls_ThatFail_AreCountedAsBefore()
    {
        var inner = new FailingDriver();
        var driver = new InstrumentedDriver(inner);
        using var errors = new ErrorCount();
        var vm = Vm("b");

        inner.Mode = FailingDriver.How.Throw;
        await driver.Invoking(d => d.InspectAsync(vm)).Should().ThrowAsync<DriverException>();
        inner.Mode = FailingDriver.How.FaultedTask;
        await driver.Invoking(d => d.StartAsync(vm)).Should().ThrowAsync<DriverException>();
        inner.Mode = FailingDriver.How.FailsLater;
        await driver.Invoking(d => d.CheckAvailabilityAsync()).Should().ThrowAsync<DriverException>();

        errors.Operations.Should().Equal("inspect", "start", "check_availability");
    }

    [Test]
    public async Task Calls_CancelledByTheCaller_AreCancelledAndNotCounted()
    {
        var inner = new FailingDriver { Mode = FailingDriver.How.Cancelled };
        var driver = new InstrumentedDriver(inner);
        using var errors = new ErrorCount();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        var inspect = driver.InspectAsync(Vm("c"), cts.Token);

        await inspect.Invoking(t => t).Should().ThrowAsync<OperationCanceledException>();
        inspect.IsCanceled.Should().BeTrue("as the async wrapper made it");
        errors.Operations.Should().BeEmpty("the caller gave up; not the driver's failure");
    }

    private sealed class ErrorCount : IDisposable
    {
        private readonly MeterListener _listener = new();

        public ErrorCount()
        {
            _listener.InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument, HypercoreTelemetry.DriverErrors))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == InstrumentedDriver.TagOperation)
                    {
                        Operations.Add((string)tag.Value!);
                    }
                }
            });
            _listener.Start();
        }

        public List<string> Operations { get; } = [];

        public void Dispose() => _listener.Dispose();
    }

    private class AnsweringDriver : IHypervisorDriver
    {
        public Task<DriverAvailability> Availability { get; } = Task.FromResult(DriverAvailability.Ok("ok"));

        public Task<VmRuntimeInfo> Answer { get; } = Task.FromResult(new VmRuntimeInfo { Uid = "", State = LiveState.Running });

        public Task<IReadOnlyList<VmRuntimeInfo>> Listed { get; } = Task.FromResult<IReadOnlyList<VmRuntimeInfo>>([]);

        public string Name => "answering";

        public DriverCapabilities Capabilities => DriverCapabilities.None;

        public virtual Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default) => Availability;

        public Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default) => Listed;

        public virtual Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default) => Answer;

        public virtual Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default) => Answer;

        public Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default) => Task.CompletedTask;

        public string ConsoleLogPath(MicroVm vm) => "/dev/null";
    }

    private sealed class FailingDriver : AnsweringDriver
    {
        public enum How { Throw, FaultedTask, FailsLater, Cancelled }

        public How Mode { get; set; }

        public override Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default) => Fail<DriverAvailability>(cancellationToken);

        public override Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default) => Fail<VmRuntimeInfo>(cancellationToken);

        public override Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default) => Fail<VmRuntimeInfo>(cancellationToken);

        private Task<T> Fail<T>(CancellationToken cancellationToken) => Mode switch
        {
            How.Throw => throw new DriverException("Broken", "thrown at once"),
            How.FaultedTask => Task.FromException<T>(new DriverException("Broken", "a failed task")),
            How.FailsLater => Later<T>(),
            _ => throw new OperationCanceledException(cancellationToken),
        };

        private static async Task<T> Later<T>()
        {
            await Task.Yield();
            throw new DriverException("Broken", "failed after a while");
        }
    }
}

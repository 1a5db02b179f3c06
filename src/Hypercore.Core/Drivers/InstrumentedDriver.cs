using System.Diagnostics;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Telemetry;

namespace Hypercore.Drivers;

/// <summary>
/// Wraps a driver so that every call is an Activity <c>driver.&lt;op&gt;</c> (a child of the reconcile span that made
/// it) tagged with the provider, and every failed call counts in <see cref="HypercoreTelemetry.DriverErrors"/>.
/// <see cref="DriverRegistry"/> wraps each driver it is given, so the reconciler never sees an uninstrumented one.
/// System.Diagnostics only: exporters are the host's business.
/// </summary>
public sealed class InstrumentedDriver : IHypervisorDriver, ILiveStateChanges
{
    public const string TagProvider = "hypercore.provider";
    public const string TagMicroVm = "hypercore.microvm";
    public const string TagUid = "hypercore.microvm.uid";
    public const string TagOperation = "operation";

    private readonly IHypervisorDriver _inner;

    /// <summary>Issue 15: the wrapped driver's reports, when it makes any (<see cref="ILiveStateChanges"/>).</summary>
    public event Action<string>? LiveStateChanged
    {
        add
        {
            if (_inner is ILiveStateChanges changes)
            {
                changes.LiveStateChanged += value;
            }
        }

        remove
        {
            if (_inner is ILiveStateChanges changes)
            {
                changes.LiveStateChanged -= value;
            }
        }
    }

    public InstrumentedDriver(IHypervisorDriver inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _inner = inner is InstrumentedDriver already ? already._inner : inner;
    }

    /// <summary>The driver doing the work.</summary>
    public IHypervisorDriver Inner => _inner;

    public string Name => _inner.Name;

    public DriverCapabilities Capabilities => _inner.Capabilities;

    public Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default) =>
        Quiet
            ? Quietly(static (d, _, ct) => d.CheckAvailabilityAsync(ct), 0, "check_availability", cancellationToken)
            : CheckAvailabilityInstrumentedAsync(cancellationToken);

    private async Task<DriverAvailability> CheckAvailabilityInstrumentedAsync(CancellationToken cancellationToken)
    {
        using var activity = Start("driver.check_availability", null);
        try
        {
            var result = await _inner.CheckAvailabilityAsync(cancellationToken);
            activity?.SetTag("hypercore.available", result.Available);
            return result;
        }
        catch (Exception ex)
        {
            Fail(activity, "check_availability", ex, cancellationToken);
            throw;
        }
    }

    public Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default) =>
        Quiet
            ? Quietly(static (d, _, ct) => d.ListAsync(ct), 0, "list", cancellationToken)
            : ListInstrumentedAsync(cancellationToken);

    private async Task<IReadOnlyList<VmRuntimeInfo>> ListInstrumentedAsync(CancellationToken cancellationToken)
    {
        using var activity = Start("driver.list", null);
        try
        {
            var result = await _inner.ListAsync(cancellationToken);
            activity?.SetTag("hypercore.found", result.Count);
            return result;
        }
        catch (Exception ex)
        {
            Fail(activity, "list", ex, cancellationToken);
            throw;
        }
    }

    /// <summary>Pure path arithmetic: no span.</summary>
    public string ConsoleLogPath(MicroVm vm) => _inner.ConsoleLogPath(vm);

    public Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        Quiet
            ? Quietly(static (d, a, ct) => d.InspectAsync(a, ct), vm, "inspect", cancellationToken)
            : InspectInstrumentedAsync(vm, cancellationToken);

    private async Task<VmRuntimeInfo> InspectInstrumentedAsync(MicroVm vm, CancellationToken cancellationToken)
    {
        using var activity = Start("driver.inspect", vm);
        try
        {
            var result = await _inner.InspectAsync(vm, cancellationToken);
            activity?.SetTag("hypercore.live_state", result.State.ToString());
            return result;
        }
        catch (Exception ex)
        {
            Fail(activity, "inspect", ex, cancellationToken);
            throw;
        }
    }

    public Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        Quiet
            ? Quietly(static (d, a, ct) => d.StartAsync(a, ct), vm, "start", cancellationToken)
            : StartInstrumentedAsync(vm, cancellationToken);

    private async Task<VmRuntimeInfo> StartInstrumentedAsync(MicroVm vm, CancellationToken cancellationToken)
    {
        using var activity = Start("driver.start", vm);
        try
        {
            var result = await _inner.StartAsync(vm, cancellationToken);
            activity?.SetTag("hypercore.live_state", result.State.ToString());
            activity?.SetTag("hypercore.pid", result.Pid);
            return result;
        }
        catch (Exception ex)
        {
            Fail(activity, "start", ex, cancellationToken);
            throw;
        }
    }

    public Task<VmRuntimeInfo> StartAsync(StartContext context, CancellationToken cancellationToken = default) =>
        Quiet
            ? Quietly(static (d, a, ct) => d.StartAsync(a, ct), context, "start", cancellationToken)
            : StartInstrumentedAsync(context, cancellationToken);

    private async Task<VmRuntimeInfo> StartInstrumentedAsync(StartContext context, CancellationToken cancellationToken)
    {
        using var activity = Start("driver.start", context.Vm);
        try
        {
            var result = await _inner.StartAsync(context, cancellationToken);
            activity?.SetTag("hypercore.live_state", result.State.ToString());
            activity?.SetTag("hypercore.pid", result.Pid);
            return result;
        }
        catch (Exception ex)
        {
            Fail(activity, "start", ex, cancellationToken);
            throw;
        }
    }

    public async Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        using var activity = Start("driver.pause", vm);
        try
        {
            await _inner.PauseAsync(vm, cancellationToken);
        }
        catch (Exception ex)
        {
            Fail(activity, "pause", ex, cancellationToken);
            throw;
        }
    }

    public async Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        using var activity = Start("driver.resume", vm);
        try
        {
            await _inner.ResumeAsync(vm, cancellationToken);
        }
        catch (Exception ex)
        {
            Fail(activity, "resume", ex, cancellationToken);
            throw;
        }
    }

    public async Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default)
    {
        using var activity = Start("driver.stop", vm);
        activity?.SetTag("hypercore.grace_period_s", gracePeriod.TotalSeconds);
        try
        {
            await _inner.StopAsync(vm, gracePeriod, cancellationToken);
        }
        catch (Exception ex)
        {
            Fail(activity, "stop", ex, cancellationToken);
            throw;
        }
    }

    public async Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        using var activity = Start("driver.cleanup", vm);
        try
        {
            await _inner.CleanupAsync(vm, cancellationToken);
        }
        catch (Exception ex)
        {
            Fail(activity, "cleanup", ex, cancellationToken);
            throw;
        }
    }

    public override string ToString() => $"instrumented {_inner.Name} driver";

    /// <summary>
    /// Nobody listens to the driver spans (issue 15, alloc9): then a call that returns a completed task gets that task
    /// back as it is. An <c>async</c> wrapper made a new task for every such call (~72 bytes: the availability check, the
    /// inspect and the start of every pass) even though it had nothing to add to it. A failed or pending call is still
    /// awaited here, so every failure counts in <see cref="HypercoreTelemetry.DriverErrors"/> as before.
    /// </summary>
    private static bool Quiet => !HypercoreTelemetry.ActivitySource.HasListeners();

    /// <summary>
    /// The quiet path of a call: the inner driver's task as it is when it completed successfully; a call that throws
    /// before returning a task fails in the task (as the async method did), and a failed or pending one is observed.
    /// </summary>
    private Task<T> Quietly<T, TArg>(
        Func<IHypervisorDriver, TArg, CancellationToken, Task<T>> call,
        TArg arg,
        string operation,
        CancellationToken cancellationToken)
    {
        Task<T> task;
        try
        {
            task = call(_inner, arg, cancellationToken);
        }
        catch (Exception ex)
        {
            task = Task.FromException<T>(ex);
        }

        return task.IsCompletedSuccessfully ? task : ObserveAsync(task, operation, cancellationToken);
    }

    private async Task<T> ObserveAsync<T>(Task<T> task, string operation, CancellationToken cancellationToken)
    {
        try
        {
            return await task;
        }
        catch (Exception ex)
        {
            Fail(null, operation, ex, cancellationToken);
            throw;
        }
    }

    /// <summary>Null when nobody listens: then the call costs no allocation here.</summary>
    private Activity? Start(string name, MicroVm? vm)
    {
        var activity = HypercoreTelemetry.ActivitySource.StartActivity(name, ActivityKind.Internal);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(TagProvider, _inner.Name);
            if (vm is not null)
            {
                activity.SetTag(TagMicroVm, vm.Key.ToString());
                activity.SetTag(TagUid, vm.Uid);
            }
        }

        return activity;
    }

    private void Fail(Activity? activity, string operation, Exception ex, CancellationToken cancellationToken)
    {
        if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested)
        {
            activity?.SetTag("hypercore.cancelled", true);
            return; // the caller gave up (daemon stopping); not the driver's failure
        }

        HypercoreTelemetry.DriverErrors.Add(
            1,
            new KeyValuePair<string, object?>("provider", _inner.Name),
            new KeyValuePair<string, object?>(TagOperation, operation),
            new KeyValuePair<string, object?>("reason", ex is DriverException d ? d.Reason : ex.GetType().Name));
        if (activity is not null)
        {
            activity.SetStatus(ActivityStatusCode.Error, ex.Message);
            activity.AddException(ex);
        }
    }
}

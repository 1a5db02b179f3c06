using System.Collections.Concurrent;
using System.Diagnostics;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Store;
using Hypercore.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Reconciliation;

/// <summary>What the work loop should do with a key after one reconcile.</summary>
public readonly record struct ReconcileResult(ReconcileOutcome Outcome, TimeSpan Delay = default)
{
    public static ReconcileResult Done => new(ReconcileOutcome.Done);

    public static ReconcileResult Poll => new(ReconcileOutcome.Poll);

    public static ReconcileResult After(TimeSpan delay) => new(ReconcileOutcome.After, delay);

    public static ReconcileResult Backoff => new(ReconcileOutcome.Backoff);
}

public enum ReconcileOutcome
{
    /// <summary>Nothing more to do until the record changes.</summary>
    Done,

    /// <summary>The VM is alive: look again after the poll interval.</summary>
    Poll,

    /// <summary>Look again after a given delay (crash-loop backoff).</summary>
    After,

    /// <summary>Failed: retry with per-key exponential backoff.</summary>
    Backoff,
}

/// <summary>
/// One level-triggered pass for one MicroVM: re-read the record and the driver's live state, do at most what is
/// needed to move live toward desired, then write status if it changed. Idempotent; safe to run any number of
/// times. It never runs twice at once for one key (the work queue sees to that).
/// </summary>
public sealed partial class Reconciler
{
    private readonly IMicroVmStore _store;
    private readonly DriverRegistry _drivers;
    private readonly TimeProvider _time;
    private readonly ReconcilerOptions _options;
    private readonly ILogger<Reconciler> _log;
    private readonly ConcurrentDictionary<VmKey, int> _crashes = new();
    private readonly ConcurrentDictionary<VmKey, DateTimeOffset> _unknownSince = new();

    private readonly IReadOnlyList<IStartStep> _steps;
    private readonly TimeLimits _inspectLimits;

    public Reconciler(
        IMicroVmStore store, DriverRegistry drivers, TimeProvider time, IOptions<ReconcilerOptions> options, ILogger<Reconciler> log,
        IEnumerable<IStartStep>? steps = null, GuestHealth.LivenessSignals? liveness = null,
        Informers.IMicroVmCache? cache = null, IResourceVersionCheck? versions = null)
    {
        _cache = cache; // issue 15: Reconciler.Cached.cs
        _versions = versions;
        _steps = (steps ?? []).OrderBy(s => s.Order).ToList();
        _liveness = liveness;
        _store = store;
        _drivers = drivers;
        _time = time;
        _options = options.Value;
        _log = log;
        _inspectLimits = new TimeLimits(time);
    }

    public Task<ReconcileResult> ReconcileAsync(VmKey key, CancellationToken ct) => ReconcilePassAsync(key, ct).AsTask();

    /// <summary>
    /// <see cref="ReconcileAsync"/> for the work loop, which awaits it once. Issue 15 (alloc7): every method a pass awaits
    /// that is still waiting when it returns costs the pass an async state machine (~150–250 bytes; a new Stopped VM's
    /// pass waits for its one store write through all of them), so the pass is kept to few such levels: this one reads
    /// the record, runs the pass (again from the store when an unchecked copy was stale, Reconciler.Cached.cs) and awaits
    /// the claim and the Stopped or Running write itself; what often completes at once (the inspect, the start steps,
    /// bringing the VM up) returns a <see cref="ValueTask"/>. Issue 15 (alloc9): the pass's body is in this method rather
    /// than in a core method it awaited, which was a second frame (~290 bytes) for every pass that wrote.
    /// </summary>
    internal async ValueTask<ReconcileResult> ReconcilePassAsync(VmKey key, CancellationToken ct)
    {
        using var activity = HypercoreTelemetry.ActivitySource.StartActivity("reconcile");
        activity?.SetTag("microvm", key.ToString());
        var started = Stopwatch.GetTimestamp();
        try
        {
            var (vm, isUnchecked) = await ReadCurrentAsync(key, ct); // Reconciler.Cached.cs
            var remembered = isUnchecked ? FindHere(key) : null;
            var read = vm;
            while (true)
            {
                try
                {
                    if (vm is null)
                    {
                        _crashes.TryRemove(key, out _);
                        _unknownSince.TryRemove(key, out _);
                        return Outcome(activity, await ReleaseGoneAsync(key, ct));
                    }

                    if (vm.Spec.NodeName.Length > 0 && vm.Spec.NodeName != _options.NodeName)
                    {
                        await ConfirmAsync(vm, isUnchecked, ct);
                        return Outcome(activity, ReconcileResult.Done); // another node's VM
                    }

                    var provider = _drivers.Resolve(vm.Spec.Provider);
                    if (!_drivers.TryGet(vm.Spec.Provider, out var driver))
                    {
                        await ConfirmAsync(vm, isUnchecked, ct);
                        if (vm.IsDeleting)
                        {
                            await _store.RemoveAsync(key, ct); // nothing can have been started for it here
                            return Outcome(activity, ReconcileResult.Done);
                        }

                        var known = string.Join(", ", _drivers.Names.Order(StringComparer.Ordinal));
                        await WriteFailureAsync(vm, Conditions.ReasonProviderUnavailable, $"no driver named \"{provider}\" on this node; available: {known}", ct);
                        return Outcome(activity, ReconcileResult.Done);
                    }

                    if (vm.IsDeleting)
                    {
                        return Outcome(activity, await DeleteAsync(vm, driver, ct));
                    }

                    // Refused before any driver call; the API refuses the same requests with the same check.
                    var refusals = CapabilityCheck.Unsupported(vm.Spec, driver);
                    if (refusals.Count > 0)
                    {
                        await ConfirmAsync(vm, isUnchecked, ct);
                        await WriteFailureAsync(vm, Conditions.ReasonUnsupported, string.Join("; ", refusals), ct);
                        return Outcome(activity, ReconcileResult.Done);
                    }

                    var availability = await driver.CheckAvailabilityAsync(ct);
                    if (!availability.Available)
                    {
                        await ConfirmAsync(vm, isUnchecked, ct);
                        await WriteFailureAsync(vm, Conditions.ReasonProviderUnavailable, availability.Detail, ct);
                        return Outcome(activity, ReconcileResult.Backoff); // the binary may be installed later
                    }

                    if (OnLostNode(vm))
                    {
                        await ConfirmAsync(vm, isUnchecked, ct);
                        return Outcome(activity, ReconcileResult.Poll); // Kubernetes issue 13: the cluster has this node for lost; see Reconciler.Moved.cs
                    }

                    var claimWithStopped = !vm.Claimed && ClaimCanJoinStopped(vm); // Reconciler.Claim.cs
                    if (!vm.Claimed && !claimWithStopped)
                    {
                        try
                        {
                            vm = await ClaimAsync(vm, ct); // Reconciler.Claim.cs
                        }
                        catch (Exception ex) when (IsStale(ex, isUnchecked))
                        {
                            throw new StaleCopyException();
                        }

                        isUnchecked = false; // the claim was written against this version: the record is the store's now
                    }

                    RememberHere(vm);

                    var live = await InspectAsync(vm, driver, ct);
                    if (claimWithStopped && live.State != LiveState.NotFound)
                    {
                        await ConfirmAsync(vm, isUnchecked, ct);
                        isUnchecked = false;
                        vm = await _store.ClaimAsync(vm.Key, ct); // something is there for it: claimed before it is touched, as always
                    }
                    else if (isUnchecked && vm.Claimed && live.State != LiveState.NotFound)
                    {
                        await ConfirmAsync(vm, isUnchecked, ct); // claimed at create (IsStoppedSinceCreate, IsProvisioningSinceCreate): checked before it is touched
                        isUnchecked = false;
                    }

                    if (live.State == LiveState.Unknown)
                    {
                        return Outcome(activity, await UnknownAsync(vm, driver, live, ct));
                    }

                    _unknownSince.TryRemove(vm.Key, out _);
                    if (live.State is LiveState.Running or LiveState.Paused or LiveState.Created &&
                        vm.Status.FindCondition(Conditions.Unresponsive) is { Status: ConditionStatus.True })
                    {
                        vm = await SetUnresponsiveAsync(vm, ConditionStatus.False, "Responsive", "the hypervisor answers again", ct);
                    }

                    // Guest health (issue 14): a failed liveness probe ends the VM; its restart policy decides what follows.
                    if (live.State == LiveState.Running && vm.Spec.State == DesiredState.Running && _liveness?.TryTake(vm) is { } failure)
                    {
                        return Outcome(activity, await EndForLivenessAsync(vm, driver, failure, ct));
                    }

                    if (vm.Spec.State == DesiredState.Stopped)
                    {
                        // A new Stopped VM with nothing live may get here unchecked: its one write is the claim + Stopped, or none
                        // when it was claimed Stopped at create. The write is awaited here rather than in a method of its own
                        // (issue 15, alloc7: one state machine less per pass).
                        try
                        {
                            vm = await StopLiveAsync(vm, driver, live, ct);
                            _crashes.TryRemove(vm.Key, out _);
                            await WriteStatusAsync(vm, StoppedStatus(vm), ct, claim: !vm.Claimed);
                            return Outcome(activity, ReconcileResult.Done);
                        }
                        catch (Exception ex) when (IsStale(ex, isUnchecked))
                        {
                            throw new StaleCopyException();
                        }
                    }

                    // The write that ends bringing it up (Running, usually) is awaited here rather than in BringUpAsync (issue 15, alloc9:
                    // this method is already suspended at the claim, so waiting here costs nothing, while BringUpAsync's frame,
                    // ~390 bytes, was made for that wait alone whenever the driver answered at once).
                    // Unchecked here only when claimed Provisioning at create with nothing live (IsProvisioningSinceCreate): the
                    // write that ends bringing it up is checked against the copy's version, and a Conflict there (a stale copy)
                    // ends the pass like any other; the newer version's pass acts on what this one started.
                    var (up, write) = await BringUpAsync(vm, driver, live, ct);
                    if (write is not null)
                    {
                        await write;
                    }

                    return Outcome(activity, up);
                }
                catch (StaleCopyException) when (isUnchecked)
                {
                    // Nothing was written or started from the stale copy: the same pass again from the store's record.
                    vm = await ReadAfterStaleCopyAsync(key, read!, remembered, ct);
                    isUnchecked = false;
                }
            }
        }
        catch (ConflictException)
        {
            // Someone wrote the record since we read it: the newer version is already queued by the watch.
            LogConflict(key);
            return ReconcileResult.Backoff;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            HypercoreTelemetry.ReconcileErrors.Add(1);
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            LogFailed(key, ex.Message, ex);
            await TryReportErrorAsync(key, ex, ct);
            return ReconcileResult.Backoff;
        }
        finally
        {
            HypercoreTelemetry.ReconcileDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    /// <summary>The pass's result, noted on its span.</summary>
    private static ReconcileResult Outcome(Activity? activity, ReconcileResult result)
    {
        activity?.SetTag("outcome", result.Outcome.ToString());
        return result;
    }

    /// <summary>
    /// The driver's view, within <see cref="ReconcilerOptions.InspectTimeout"/>: a hypervisor that does not answer in
    /// time (e.g. a frozen QEMU) is Unknown, and the worker is free for other VMs.
    /// </summary>
    private async ValueTask<VmRuntimeInfo> InspectAsync(MicroVm vm, IHypervisorDriver driver, CancellationToken ct)
    {
        // One source, cancelled at the limit or with ct (issue 15: every pass inspects; a linked source on top of the
        // timed one was a second source and two registrations per pass).
        var limit = _inspectLimits.Rent(_options.InspectTimeout);
        var stop = ct.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), limit);
        try
        {
            return await driver.InspectAsync(vm, limit.Token).WaitAsync(limit.Token);
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            return new VmRuntimeInfo
            {
                Uid = vm.Uid,
                State = LiveState.Unknown,
                Pid = vm.Status.Pid,
                Detail = $"{driver.Name} did not answer within {_options.InspectTimeout.TotalSeconds:0.#} s",
            };
        }
        finally
        {
            stop.Dispose(); // before the source goes back: a cancel of ct from here on no longer reaches it
            _inspectLimits.Return(limit);
        }
    }

    /// <summary>
    /// A state that cannot be read is never taken for dead. Only once it has stayed unreadable for
    /// <see cref="ReconcilerOptions.UnresponsiveAfter"/> while the VM should be up is the VM declared Unresponsive:
    /// the hypervisor is killed (it serves no one frozen) and the restart policy decides whether it starts again.
    /// </summary>
    private async Task<ReconcileResult> UnknownAsync(MicroVm vm, IHypervisorDriver driver, VmRuntimeInfo live, CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var since = _unknownSince.GetOrAdd(vm.Key, now);
        var silent = now - since;
        if (silent < _options.UnresponsiveAfter || vm.Spec.State == DesiredState.Stopped)
        {
            // A VM that should be stopped gets stopped by the next pass that can see it; killing it blind is not needed.
            return ReconcileResult.Poll;
        }

        var message = $"the hypervisor has not answered for {silent.TotalSeconds:0} s ({live.Detail ?? "no detail"}); killed it";
        LogUnresponsive(vm.Key, silent.TotalSeconds, vm.Spec.RestartPolicy);
        vm = await SetUnresponsiveAsync(vm, ConditionStatus.True, Conditions.Unresponsive, message, ct);
        await driver.StopAsync(vm, TimeSpan.Zero, ct);
        _unknownSince.TryRemove(vm.Key, out _);
        var ended = new VmRuntimeInfo { Uid = vm.Uid, State = LiveState.Exited, Exit = ExitKind.Crashed, Detail = live.Detail };
        return await EnsureUpAsync(vm, driver, ended, ct, (Conditions.Unresponsive, "the hypervisor stopped answering and was killed"));
    }

    private async Task<MicroVm> SetUnresponsiveAsync(MicroVm vm, ConditionStatus status, string reason, string message, CancellationToken ct)
    {
        var next = vm.Status with
        {
            Conditions = Conditions.Set(vm.Status.Conditions, Conditions.Unresponsive, status, reason, message, vm.Generation, _time.GetUtcNow()),
        };
        return await _store.UpdateStatusAsync(vm.Key, next, vm.ResourceVersion, ct);
    }

    /// <param name="ending">Why the VM ended when the reconciler ended it (reason and words), instead of reading it from <paramref name="live"/>.</param>
    private async Task<ReconcileResult> EnsureUpAsync(
        MicroVm vm, IHypervisorDriver driver, VmRuntimeInfo live, CancellationToken ct, (string Reason, string How)? ending = null)
    {
        var (result, write) = await BringUpAsync(vm, driver, live, ct, ending);
        if (write is not null)
        {
            await write;
        }

        return result;
    }

    /// <summary>
    /// <see cref="EnsureUpAsync"/> without waiting for its last status write: that write, when there is one, comes back
    /// with the result and the caller awaits it at once (errors surface there, as they did here).
    /// </summary>
    private async ValueTask<(ReconcileResult Result, Task<MicroVm>? Write)> BringUpAsync(
        MicroVm vm, IHypervisorDriver driver, VmRuntimeInfo live, CancellationToken ct, (string Reason, string How)? ending = null)
    {
        var wantPaused = vm.Spec.State == DesiredState.Paused;
        var restarts = vm.Status.RestartCount;
        var pending = Unchanged; // the start steps' status changes not written yet: they go with the next write
        if (live.State == LiveState.Created)
        {
            // A hypervisor that never booted (e.g. the daemon died mid-start): clear it and start afresh.
            live = VmRuntimeInfo.NotFound(vm.Uid);
        }

        if (live.State is LiveState.Exited or LiveState.NotFound)
        {
            var wasUp = vm.Status.Phase is Phase.Running or Phase.Paused or Phase.CrashLoopBackOff;
            var crashed = live.State == LiveState.NotFound || live.Exit == ExitKind.Crashed;
            if (wasUp && vm.Status.Phase != Phase.CrashLoopBackOff)
            {
                var restart = vm.Spec.RestartPolicy switch
                {
                    RestartPolicy.Always => true,
                    RestartPolicy.OnFailure => crashed,
                    _ => false,
                };
                var how = ending?.How ?? (crashed ? "the hypervisor process ended unexpectedly" : "the guest powered off");
                var endReason = ending?.Reason ?? (crashed ? ReasonCrashed : ReasonGuestShutdown);
                LogExited(vm.Key, how, vm.Spec.RestartPolicy);
                if (!restart)
                {
                    await driver.StopAsync(vm, TimeSpan.Zero, ct); // reap leftovers (e.g. a QEMU kept after guest shutdown)
                    var phase = crashed ? Phase.Failed : Phase.Stopped;
                    await WriteStatusAsync(vm, s => s with { Phase = phase, Pid = null },
                        ready: (ConditionStatus.False, endReason, $"{how}; restartPolicy {vm.Spec.RestartPolicy}"), ct);
                    return (ReconcileResult.Done, null);
                }

                // Crash-loop backoff: a VM that keeps dying soon after boot waits longer each time.
                var ranFor = vm.Status.BootTime is { } boot ? _time.GetUtcNow() - boot : TimeSpan.Zero;
                var crashes = ranFor >= _options.StableRunTime
                    ? _crashes[vm.Key] = 1
                    : _crashes.AddOrUpdate(vm.Key, 1, (_, n) => n + 1);
                if (crashes > 1)
                {
                    var wait = Delay(crashes - 1);
                    await driver.StopAsync(vm, TimeSpan.Zero, ct);
                    await WriteStatusAsync(vm, s => s with { Phase = Phase.CrashLoopBackOff, Pid = null },
                        ready: (ConditionStatus.False, "CrashLoopBackOff", $"{how}; restarting in {wait.TotalSeconds:0.#} s (restart {restarts + 1})"), ct);
                    return (ReconcileResult.After(wait), null);
                }

                restarts++;
            }
            else if (vm.Status.Phase == Phase.CrashLoopBackOff)
            {
                restarts++;
            }
            else if (EndedOnItsOwn(vm))
            {
                // The restart policy already said "stay down" for this generation. A new start request (a spec
                // change, e.g. Stopped then Running) bumps the generation and starts it again.
                return (ReconcileResult.Done, null);
            }

            await driver.StopAsync(vm, TimeSpan.Zero, ct); // clear a dead instance's leftovers before a fresh start
            var context = new StartContext(vm);
            var (stop, applied) = await RunStartStepsAsync(context, ct);
            if (stop is { } waitOrFail)
            {
                return (waitOrFail, null);
            }

            (vm, pending) = await ProvisioningAsync(vm, applied, restarts, ct);
            VmRuntimeInfo started;
            var t0 = Stopwatch.GetTimestamp();
            try
            {
                started = await driver.StartAsync(context, ct);
            }
            catch (DriverException ex)
            {
                await WriteFailureAsync(vm, ex.Reason, ex.Message, ct, pending);
                return (ReconcileResult.Backoff, null);
            }

            HypercoreTelemetry.BootTime.Record(Stopwatch.GetElapsedTime(t0).TotalSeconds, new KeyValuePair<string, object?>("provider", driver.Name));
            LogStarted(vm.Key, started.Pid, started.Detail);
            live = started;
        }

        if (wantPaused && live.State is LiveState.Running)
        {
            await driver.PauseAsync(vm, ct);
            live = live with { State = LiveState.Paused };
        }
        else if (!wantPaused && live.State is LiveState.Paused)
        {
            await driver.ResumeAsync(vm, ct);
            live = live with { State = LiveState.Running };
        }

        return (ReconcileResult.Poll, WriteStatusAsync(vm, UpStatus(vm, live, restarts, pending), ct));
    }

    /// <summary>Running or Paused as <paramref name="live"/> says, in one step (no change function: <see cref="StandardConditions"/>).</summary>
    /// <param name="pending">The start steps' changes not written yet (<see cref="ProvisioningAsync"/>).</param>
    private MicroVmStatus UpStatus(MicroVm vm, VmRuntimeInfo live, int restarts, Func<MicroVmStatus, MicroVmStatus> pending)
    {
        var s = pending(vm.Status);
        var paused = live.State == LiveState.Paused;
        var now = _time.GetUtcNow();
        var conditions = Conditions.Set(s.Conditions, Conditions.Paused, paused ? ConditionStatus.True : ConditionStatus.False,
            paused ? "Paused" : "NotPaused", paused ? "the VM is paused" : "", vm.Generation, now);
        var ready = paused ? (ConditionStatus.False, "Paused", "the VM is paused") : (ConditionStatus.True, "Running", "the VM is running");
        return s with
        {
            Phase = paused ? Phase.Paused : Phase.Running,
            Pid = live.Pid,
            ConsoleLogPath = live.ConsoleLogPath ?? s.ConsoleLogPath,
            BootTime = live.BootTime ?? s.BootTime,
            Runtime = live.Detail ?? s.Runtime,
            RestartCount = restarts,
            Conditions = StandardConditions(conditions, vm, ready, synchronized: null, now),
            ObservedGeneration = vm.Generation,
            Node = _options.NodeName,
        };
    }

    /// <summary>
    /// For a VM that should be stopped: powers off what is live (Stopping first) or reaps an exited process. Nothing is
    /// awaited when nothing is live (every new Stopped VM); the caller then writes Stopped.
    /// </summary>
    private async ValueTask<MicroVm> StopLiveAsync(MicroVm vm, IHypervisorDriver driver, VmRuntimeInfo live, CancellationToken ct)
    {
        if (live.State is LiveState.Running or LiveState.Paused or LiveState.Created)
        {
            vm = await WriteStatusAsync(vm, s => s with { Phase = Phase.Stopping },
                ready: (ConditionStatus.False, "Stopping", "powering off"), ct);
            await driver.StopAsync(vm, _options.StopGracePeriod, ct);
            LogStopped(vm.Key);
        }
        else if (live.State == LiveState.Exited)
        {
            await driver.StopAsync(vm, TimeSpan.Zero, ct); // reap a process kept after guest shutdown
        }

        return vm;
    }

    private async Task<ReconcileResult> DeleteAsync(MicroVm vm, IHypervisorDriver driver, CancellationToken ct)
    {
        if (vm.Status.Phase != Phase.Deleting)
        {
            vm = await WriteStatusAsync(vm, s => s with { Phase = Phase.Deleting },
                ready: (ConditionStatus.False, "Deleting", "deleting the VM"), ct);
        }

        await driver.StopAsync(vm, _options.StopGracePeriod, ct);
        await driver.CleanupAsync(vm, ct);
        for (var i = _steps.Count - 1; i >= 0; i--)
        {
            await _steps[i].ReleaseAsync(vm, ct);
        }

        await _store.RemoveAsync(vm.Key, ct);
        _crashes.TryRemove(vm.Key, out _);
        ForgetHere(vm.Key);
        LogDeleted(vm.Key);
        return ReconcileResult.Done;
    }

    /// <summary>
    /// Runs the start steps in order. Stop is null when every step said Proceed (the driver may start
    /// <see cref="StartContext.Vm"/>; Applied carries the steps' status changes, e.g. ImageReady=True, for the
    /// Provisioning write); otherwise Stop is the result for the work loop, with status already written.
    /// </summary>
    /// <remarks>A <see cref="ValueTask{TResult}"/> over the steps by index, and the first change taken as it is rather than
    /// composed with "no change" (issue 15, alloc9: the result's task, the list's boxed enumerator and a closure per start,
    /// ~200 bytes; the steps usually answer at once).</remarks>
    private async ValueTask<(ReconcileResult? Stop, Func<MicroVmStatus, MicroVmStatus> Applied)> RunStartStepsAsync(StartContext context, CancellationToken ct)
    {
        Func<MicroVmStatus, MicroVmStatus> applied = Unchanged;
        for (var i = 0; i < _steps.Count; i++)
        {
            var step = _steps[i];
            var result = await step.PrepareAsync(context, ct);
            if (result.Status is { } change)
            {
                applied = ReferenceEquals(applied, Unchanged) ? change : Then(applied, change);
            }

            switch (result.Outcome)
            {
                case StartStepOutcome.Proceed:
                    continue;
                case StartStepOutcome.Wait:
                    LogStepWaiting(context.Stored.Key, step.Name, result.Message);
                    await WriteStatusAsync(context.Stored, Then(applied, Phase.Pending),
                        ready: (ConditionStatus.False, result.Reason, result.Message), ct);
                    return (ReconcileResult.After(result.RetryAfter > TimeSpan.Zero ? result.RetryAfter : _options.BackoffBase), applied);
                default:
                    LogFailure(context.Stored.Key, result.Reason, result.Message);
                    await WriteStatusAsync(context.Stored, Then(applied, Phase.Failed),
                        ready: (ConditionStatus.False, result.Reason, result.Message), ct,
                        synchronized: (ConditionStatus.False, result.Reason, result.Message));
                    return (ReconcileResult.Backoff, applied);
            }
        }

        return (null, applied);
    }

    private static readonly Func<MicroVmStatus, MicroVmStatus> Unchanged = s => s;

    /// <summary>A method of its own: a closure in the loop's body was made on every pass through it, used or not.</summary>
    private static Func<MicroVmStatus, MicroVmStatus> Then(Func<MicroVmStatus, MicroVmStatus> first, Func<MicroVmStatus, MicroVmStatus> next) =>
        s => next(first(s));

    /// <summary>The steps' changes, then <paramref name="phase"/> with no pid (a method of its own, as <see cref="Then(Func{MicroVmStatus, MicroVmStatus}, Func{MicroVmStatus, MicroVmStatus})"/>).</summary>
    private static Func<MicroVmStatus, MicroVmStatus> Then(Func<MicroVmStatus, MicroVmStatus> applied, Phase phase) =>
        s => applied(s) with { Phase = phase, Pid = null };

    /// <summary>Stopped, in one step (no change function and closure: <see cref="StandardConditions"/>).</summary>
    private MicroVmStatus StoppedStatus(MicroVm vm)
    {
        var now = _time.GetUtcNow();
        var conditions = Conditions.Set(vm.Status.Conditions, Conditions.Paused, ConditionStatus.False, "NotPaused", "", vm.Generation, now);
        return vm.Status with
        {
            Phase = Phase.Stopped,
            Pid = null,
            Conditions = StandardConditions(conditions, vm, (ConditionStatus.False, "Stopped", "the VM is stopped"), synchronized: null, now),
            ObservedGeneration = vm.Generation,
            Node = _options.NodeName,
        };
    }

    private static bool EndedOnItsOwn(MicroVm vm) =>
        vm.Status.Phase is Phase.Stopped or Phase.Failed &&
        vm.Status.ObservedGeneration == vm.Generation &&
        vm.Status.FindCondition(Conditions.Ready)?.Reason is ReasonGuestShutdown or ReasonCrashed or Conditions.Unresponsive or ReasonLivenessProbeFailed or GuestHealth.GuestHealthMonitor.ReasonStartupProbeFailed or ReasonNodeLost;

    private const string ReasonGuestShutdown = "GuestShutdown";
    private const string ReasonCrashed = "Crashed";

    private TimeSpan Delay(int failures)
    {
        var ticks = _options.BackoffBase.Ticks * Math.Pow(2, Math.Min(failures, 30));
        return ticks >= _options.BackoffCap.Ticks ? _options.BackoffCap : TimeSpan.FromTicks((long)ticks);
    }

    /// <param name="pending">Status changes not written yet (the start steps'), applied first.</param>
    private async Task WriteFailureAsync(MicroVm vm, string reason, string message, CancellationToken ct, Func<MicroVmStatus, MicroVmStatus>? pending = null)
    {
        LogFailure(vm.Key, reason, message);
        await WriteStatusAsync(vm, pending is null ? Failed : Then(pending, Phase.Failed),
            ready: (ConditionStatus.False, reason, message), ct, synchronized: (ConditionStatus.False, reason, message));
    }

    private static readonly Func<MicroVmStatus, MicroVmStatus> Failed = s => s with { Phase = Phase.Failed, Pid = null };

    private async Task TryReportErrorAsync(VmKey key, Exception ex, CancellationToken ct)
    {
        try
        {
            var vm = await _store.GetAsync(key, ct);
            if (vm is null)
            {
                return;
            }

            var reason = ex is DriverException d ? d.Reason : Conditions.ReasonReconcileError;
            var now = _time.GetUtcNow();
            var status = vm.Status with
            {
                ObservedGeneration = vm.Generation,
                Conditions = Conditions.Set(vm.Status.Conditions, Conditions.Synchronized, ConditionStatus.False, reason, ex.Message, vm.Generation, now),
            };
            if (status != vm.Status)
            {
                await _store.UpdateStatusAsync(key, status, vm.ResourceVersion, ct);
            }
        }
        catch (Exception inner) when (inner is StoreException or DriverException or IOException)
        {
            LogFailed(key, "could not record the error in status: " + inner.Message, inner);
        }
    }

    /// <summary>Applies a status change and the standard conditions; writes only when something changed.</summary>
    /// <remarks>Returns the store's task itself rather than awaiting it (issue 15, sixth pass: its state machine was the
    /// largest of a pass, ~220 bytes per write); every caller awaits it at once, so errors surface at the same place.</remarks>
    private Task<MicroVm> WriteStatusAsync(
        MicroVm vm,
        Func<MicroVmStatus, MicroVmStatus> change,
        (ConditionStatus Status, string Reason, string Message) ready,
        CancellationToken ct,
        (ConditionStatus Status, string Reason, string Message)? synchronized = null,
        bool claim = false) =>
        WriteStatusAsync(vm, NextStatus(vm, change, ready, synchronized), ct, claim);

    /// <summary>Writes <paramref name="next"/>, made with <see cref="StandardConditions"/>, when it differs from the stored status.</summary>
    private Task<MicroVm> WriteStatusAsync(MicroVm vm, MicroVmStatus next, CancellationToken ct, bool claim = false)
    {
        if (next == vm.Status)
        {
            return claim ? _store.ClaimAsync(vm.Key, ct) : Task.FromResult(vm);
        }

        if (next.Phase != vm.Status.Phase)
        {
            LogPhase(vm.Key, vm.Status.Phase, next.Phase);
        }

        return claim
            ? _store.ClaimWithStatusAsync(vm.Key, next, vm.ResourceVersion, ct) // Reconciler.Claim.cs: a new Stopped VM
            : _store.UpdateStatusAsync(vm.Key, next, vm.ResourceVersion, ct);
    }

    private MicroVmStatus NextStatus(
        MicroVm vm,
        Func<MicroVmStatus, MicroVmStatus> change,
        (ConditionStatus Status, string Reason, string Message) ready,
        (ConditionStatus Status, string Reason, string Message)? synchronized)
    {
        var next = change(vm.Status);
        return next with { Conditions = StandardConditions(next.Conditions, vm, ready, synchronized, _time.GetUtcNow()), ObservedGeneration = vm.Generation, Node = _options.NodeName };
    }

    /// <summary>
    /// What every status write sets besides its own change: Ready as given, Synchronized (True, Reconciled unless given);
    /// with them goes ObservedGeneration = the record's generation and Node = this node. The writes a Create makes build
    /// their status with it in one step (issue 15, alloc9: a change function, its closure and the status it returned
    /// before these were added were ~380 bytes of every Running Create's Running write, and of every poll of a running VM).
    /// </summary>
    private static IReadOnlyList<Condition> StandardConditions(
        IReadOnlyList<Condition> conditions,
        MicroVm vm,
        (ConditionStatus Status, string Reason, string Message) ready,
        (ConditionStatus Status, string Reason, string Message)? synchronized,
        DateTimeOffset now)
    {
        var sync = synchronized ?? (ConditionStatus.True, Conditions.ReasonReconciled, "");
        conditions = Conditions.Set(conditions, Conditions.Ready, ready.Status, ready.Reason, ready.Message, vm.Generation, now);
        return Conditions.Set(conditions, Conditions.Synchronized, sync.Status, sync.Reason, sync.Message, vm.Generation, now);
    }

    [LoggerMessage(1010, LogLevel.Information, "{Key}: waiting on start step {Step}: {Message}")]
    private partial void LogStepWaiting(VmKey key, string step, string message);

    [LoggerMessage(1000, LogLevel.Information, "{Key}: phase {From} -> {To}")]
    private partial void LogPhase(VmKey key, Phase from, Phase to);

    [LoggerMessage(1001, LogLevel.Warning, "{Key}: reconcile failed: {Message}")]
    private partial void LogFailed(VmKey key, string message, Exception ex);

    /// <remarks>Information, not Debug (issue 15, sixteenth pass): a pass logs its phase change before the write, and a
    /// claimed-at-create VM's first pass can start from a copy a spec change or delete has overtaken; this line says
    /// that the phase just logged was not stored.</remarks>
    [LoggerMessage(1002, LogLevel.Information, "{Key}: changed while reconciling: this pass's write was not stored (version conflict); the newer version's pass acts on it")]
    private partial void LogConflict(VmKey key);

    [LoggerMessage(1003, LogLevel.Warning, "{Key}: {Reason}: {Message}")]
    private partial void LogFailure(VmKey key, string reason, string message);

    [LoggerMessage(1004, LogLevel.Information, "{Key}: started (pid {Pid}; {Detail})")]
    private partial void LogStarted(VmKey key, int? pid, string? detail);

    [LoggerMessage(1005, LogLevel.Information, "{Key}: stopped")]
    private partial void LogStopped(VmKey key);

    [LoggerMessage(1006, LogLevel.Information, "{Key}: deleted, all files removed")]
    private partial void LogDeleted(VmKey key);

    [LoggerMessage(1008, LogLevel.Warning, "{Key}: unresponsive: the hypervisor has not answered for {Seconds:0} s; killing it (restartPolicy {Policy})")]
    private partial void LogUnresponsive(VmKey key, double seconds, RestartPolicy policy);

    [LoggerMessage(1007, LogLevel.Warning, "{Key}: {How} (restartPolicy {Policy})")]
    private partial void LogExited(VmKey key, string how, RestartPolicy policy);
}

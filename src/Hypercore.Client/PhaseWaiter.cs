using Grpc.Core;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Client;

/// <summary>
/// One wait for a phase (or, with a null phase, for the record to disappear). Subscribes to Watch first, then reads
/// the current state, then follows the stream, so an end state reached at any moment (even before the watch was
/// set up) ends the wait; falls back to polling Get when Watch is unimplemented or its stream ends.
/// A phase only counts once the daemon has observed the spec's current generation, so a stale "Running"
/// from before a Stop/Start does not end the wait early.
/// </summary>
internal sealed class PhaseWaiter(
    HypercoreClient client, string id, string? @namespace, string? phase, IProgress<string>? progress, HypercoreClientOptions options,
    bool guestReady = false)
{
    private string? _lastGuestReady;

    private string? _namespace = @namespace;
    private string? _lastReported;
    private string _lastPhase = "unknown";

    private bool WaitsForDeletion => phase is null;

    private string Name => $"{(_namespace is { Length: > 0 } ns ? ns + "/" : "")}{id}";

    public async Task<MicroVM?> RunAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (timeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "the wait timeout must be positive");
        }

        using var deadline = new CancellationTokenSource(timeout, options.TimeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            return await WaitAsync(linked.Token);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            var goal = WaitsForDeletion ? "be deleted" : guestReady ? $"reach {phase} with GuestReady" : $"reach {phase}";
            var ready = guestReady && _lastGuestReady is { } g ? $"; GuestReady: {g}" : "";
            throw new TimeoutException($"timed out after {Format(timeout)} waiting for microvm {Name} to {goal} (last phase: {_lastPhase}{ready})");
        }
    }

    private async Task<MicroVM?> WaitAsync(CancellationToken ct)
    {
        MicroVM? result;
        if (_namespace is not { Length: > 0 })
        {
            // Learn the namespace first, so the watch follows exactly this record even if the caller left it out.
            var first = await ReadAsync(ct);
            if (first?.Spec.Namespace is { Length: > 0 } ns)
            {
                _namespace = ns;
            }

            if (Observe(first, out result, report: false))
            {
                return result;
            }
        }

        try
        {
            using var call = client.OpenWatch(id, _namespace, ct);

            // The daemon sends the headers once it has subscribed. Only a state read after that point is safe to
            // combine with the stream: a change (a deletion that finished meanwhile) before it would never arrive.
            await call.ResponseHeadersAsync.WaitAsync(options.WatchSubscribeTimeout, options.TimeProvider, ct);
            // Read to end the wait, not to report: the stream starts from the daemon's informer, which may not have
            // caught up with this read yet, and its first ADDED would then show an older phase after a newer one
            // (vis run --from-snapshot once printed Provisioning, Pending, Provisioning, Running). Reported phases
            // come from the stream alone, in the order the daemon wrote them.
            if (Observe(await ReadAsync(ct), out result, report: false))
            {
                return result;
            }

            await foreach (var change in call.ResponseStream.ReadAllAsync(ct))
            {
                var vm = change.Type == WatchEventTypes.Deleted ? null : change.Microvm;
                if (vm is not null && vm.Spec.Id != id)
                {
                    continue;
                }

                if (Observe(vm, out result))
                {
                    return result;
                }
            }
        }
        catch (RpcException ex) when (ex.StatusCode is StatusCode.Unimplemented or StatusCode.Unavailable or StatusCode.Internal
            or StatusCode.Unknown or StatusCode.ResourceExhausted)
        {
            // No watch on this daemon, the stream broke, or it was ended for falling behind: polling still gets there
            // (and reports a dead daemon itself).
        }
        catch (TimeoutException)
        {
            // A daemon that does not confirm the subscription: polling is slower but never misses the end state.
        }

        while (true)
        {
            await Task.Delay(options.PollInterval, options.TimeProvider, ct);
            if (Observe(await client.TryGetMicroVmAsync(id, _namespace, ct), out result))
            {
                return result;
            }
        }
    }

    private async Task<MicroVM?> ReadAsync(CancellationToken ct) => WaitsForDeletion
        ? await client.TryGetMicroVmAsync(id, _namespace, ct)
        : await client.GetMicroVmAsync(id, _namespace, ct);

    /// <summary>
    /// True when the wait is over; throws when it can never be. <paramref name="report"/>: tell the progress sink
    /// (a read that is not followed by the stream, or that ends the wait, is always told).
    /// </summary>
    private bool Observe(MicroVM? vm, out MicroVM? result, bool report = true)
    {
        if (report)
        {
            return ObserveCore(vm, out result, report: true);
        }

        if (!ObserveCore(vm, out result, report: false))
        {
            return false;
        }

        ObserveCore(vm, out _, report: true); // the end state is the newest: telling it cannot go back
        return true;
    }

    private bool ObserveCore(MicroVM? vm, out MicroVM? result, bool report)
    {
        result = vm;
        if (vm is null)
        {
            Report("deleted", report);
            if (WaitsForDeletion)
            {
                return true;
            }

            throw new RpcException(new Status(StatusCode.NotFound, $"microvm {Name} was deleted while waiting for {phase}"));
        }

        var status = vm.Status ?? new MicroVMStatus();
        _lastPhase = status.Phase.Length > 0 ? status.Phase : MicroVmPhases.Pending;
        if (!guestReady)
        {
            Report(ImageProgress.Describe(status) is { } pulling ? $"{_lastPhase}: {pulling}" : _lastPhase, report);
        }

        if (WaitsForDeletion)
        {
            return false;
        }

        var current = status.ObservedGeneration >= vm.Spec.Generation;
        if (guestReady)
        {
            // Guest health: Running is not enough; the readiness probe must have succeeded on this boot.
            var condition = status.Conditions.FirstOrDefault(c => c.Type == ConditionTypes.GuestReady);
            _lastGuestReady = condition is null ? "no verdict yet" : $"{condition.Status} ({condition.Reason}): {condition.Message}";
            if (current && status.Phase == phase && condition?.Status == "True")
            {
                return true;
            }

            Report(status.Phase == phase && condition is not null ? $"{phase}, GuestReady {condition.Status}: {condition.Message}" : _lastPhase, report);
        }
        else if (current && status.Phase == phase)
        {
            return true;
        }

        if (current && status.Phase == MicroVmPhases.Failed)
        {
            throw new MicroVmFailedException(vm);
        }

        return false;
    }

    private void Report(string what, bool report)
    {
        if (!report)
        {
            return;
        }

        var line = $"{Name}: {what}";
        if (line != _lastReported)
        {
            _lastReported = line;
            progress?.Report(line);
        }
    }

    private static string Format(TimeSpan t) =>
        t.TotalSeconds < 120 ? $"{t.TotalSeconds:0.#}s" : $"{t.TotalMinutes:0.#}m";
}

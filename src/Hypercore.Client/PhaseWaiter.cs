using Grpc.Core;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Client;

/// <summary>
/// One wait for a phase (or, with a null phase, for the record to disappear). Follows Watch, which the daemon
/// starts with the current state; falls back to polling Get when Watch is unimplemented or its stream ends.
/// A phase only counts once the daemon has observed the spec's current generation, so a stale "Running"
/// from before a Stop/Start does not end the wait early.
/// </summary>
internal sealed class PhaseWaiter(
    HypercoreClient client, string id, string? @namespace, string? phase, IProgress<string>? progress, HypercoreClientOptions options)
{
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
            var goal = WaitsForDeletion ? "be deleted" : $"reach {phase}";
            throw new TimeoutException($"timed out after {Format(timeout)} waiting for microvm {Name} to {goal} (last phase: {_lastPhase})");
        }
    }

    private async Task<MicroVM?> WaitAsync(CancellationToken ct)
    {
        var current = WaitsForDeletion
            ? await client.TryGetMicroVmAsync(id, _namespace, ct)
            : await client.GetMicroVmAsync(id, _namespace, ct);

        // Watch exactly this record from now on, even if the caller left the namespace to the daemon.
        if (current?.Spec.Namespace is { Length: > 0 } ns)
        {
            _namespace = ns;
        }

        if (Observe(current, out var result))
        {
            return result;
        }

        try
        {
            await foreach (var change in client.WatchAsync(id, _namespace, ct))
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
        catch (RpcException ex) when (ex.StatusCode is StatusCode.Unimplemented or StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown)
        {
            // No watch on this daemon, or the stream broke: polling still gets there (and reports a dead daemon itself).
        }

        while (true)
        {
            await Task.Delay(options.PollInterval, options.TimeProvider, ct);
            var vm = await client.TryGetMicroVmAsync(id, _namespace, ct);
            if (Observe(vm, out result))
            {
                return result;
            }
        }
    }

    /// <summary>True when the wait is over; throws when it can never be.</summary>
    private bool Observe(MicroVM? vm, out MicroVM? result)
    {
        result = vm;
        if (vm is null)
        {
            Report("deleted");
            if (WaitsForDeletion)
            {
                return true;
            }

            throw new RpcException(new Status(StatusCode.NotFound, $"microvm {Name} was deleted while waiting for {phase}"));
        }

        var status = vm.Status ?? new MicroVMStatus();
        _lastPhase = status.Phase.Length > 0 ? status.Phase : MicroVmPhases.Pending;
        Report(_lastPhase);
        if (WaitsForDeletion)
        {
            return false;
        }

        var current = status.ObservedGeneration >= vm.Spec.Generation;
        if (current && status.Phase == phase)
        {
            return true;
        }

        if (current && status.Phase == MicroVmPhases.Failed)
        {
            throw new MicroVmFailedException(vm);
        }

        return false;
    }

    private void Report(string what)
    {
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

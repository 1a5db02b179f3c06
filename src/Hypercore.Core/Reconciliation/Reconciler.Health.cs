using Hypercore.Drivers;
using Hypercore.GuestHealth;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;

namespace Hypercore.Reconciliation;

/// <summary>Guest health (issue 14): what the reconciler does with a liveness (or startup) probe's verdict from the prober.</summary>
public sealed partial class Reconciler
{
    public const string ReasonLivenessProbeFailed = "LivenessProbeFailed";

    private readonly LivenessSignals? _liveness;

    /// <summary>
    /// Kills the hypervisor (a guest that stopped answering would not power off gracefully either) and treats the
    /// end as a crash: Always/OnFailure start it again (restart_count goes up, crash-loop backoff applies), Never
    /// leaves it Failed. The Ready condition and the log say which probe failed and how.
    /// </summary>
    private async Task<ReconcileResult> EndForLivenessAsync(MicroVm vm, IHypervisorDriver driver, LivenessFailure failure, CancellationToken ct)
    {
        LogLivenessRestart(vm.Key, failure.Message, vm.Spec.RestartPolicy);
        await driver.StopAsync(vm, TimeSpan.Zero, ct);
        var ended = new VmRuntimeInfo { Uid = vm.Uid, State = LiveState.Exited, Exit = ExitKind.Crashed, Detail = failure.Message };
        return await EnsureUpAsync(vm, driver, ended, ct, (failure.Reason, failure.Message));
    }

    [LoggerMessage(1120, LogLevel.Warning, "{Key}: {Message}; killing the hypervisor (restartPolicy {Policy})")]
    private partial void LogLivenessRestart(VmKey key, string message, RestartPolicy policy);
}

using Hypercore.Contracts.VmApi;

namespace Hypercore.Client;

/// <summary>A VM reached the Failed phase while someone waited for another phase.</summary>
public sealed class MicroVmFailedException : Exception
{
    public MicroVmFailedException(MicroVM microVm)
        : base(Describe(microVm))
    {
        MicroVm = microVm;
        Reason = FailureCondition(microVm)?.Reason ?? "";
        Detail = FailureCondition(microVm)?.Message ?? "";
    }

    public MicroVM MicroVm { get; }

    /// <summary>Reason of the Ready condition (or Synchronized when Ready says nothing), e.g. "KernelNotFound".</summary>
    public string Reason { get; }

    /// <summary>Message of that condition: what went wrong, in the daemon's words.</summary>
    public string Detail { get; }

    private static Condition? FailureCondition(MicroVM vm) =>
        vm.Status?.Conditions.FirstOrDefault(c => c.Type == ConditionTypes.Ready && c.Message.Length > 0) ??
        vm.Status?.Conditions.FirstOrDefault(c => c.Type == ConditionTypes.Synchronized && c.Message.Length > 0);

    private static string Describe(MicroVM vm)
    {
        var name = $"{vm.Spec?.Namespace}/{vm.Spec?.Id}";
        var condition = FailureCondition(vm);
        return condition is null
            ? $"microvm {name} failed"
            : $"microvm {name} failed: {condition.Message}" + (condition.Reason.Length > 0 ? $" ({condition.Reason})" : "");
    }
}

using Microsoft.Extensions.Options;

namespace Hypercore.Admission;

/// <summary>
/// What this node offers to microVMs (section "Capacity"): the host's memory and CPUs (or the values given here),
/// minus a reserve for the host and the daemon, with CPUs overcommitted by a ratio. Every VM is charged its
/// memory_in_mb plus a per-VM overhead for the hypervisor process, and its vcpu count.
/// </summary>
public sealed class CapacityOptions
{
    public const string Section = "Capacity";

    /// <summary>Node memory in MiB; 0 = MemTotal of /proc/meminfo.</summary>
    public long MemoryMb { get; set; }

    /// <summary>Node CPUs; 0 = the CPUs this process may run on (<see cref="Environment.ProcessorCount"/>, which honours affinity and cgroup quota).</summary>
    public int Cpus { get; set; }

    /// <summary>Memory kept for the host, the daemon and everything else on the node. Default 512 MiB (OpenStack's reserved_host_memory_mb).</summary>
    public long ReservedMemoryMb { get; set; } = 512;

    /// <summary>Whole CPUs kept for the host before the overcommit ratio applies. Default 0.</summary>
    public int ReservedCpus { get; set; }

    /// <summary>vCPUs admitted per host CPU. Default 16 (OpenStack's long-standing cpu_allocation_ratio): TCG and idle guests rarely use a whole CPU.</summary>
    public double CpuOvercommitRatio { get; set; } = 16;

    /// <summary>Memory charged per VM on top of its guest memory, for the hypervisor process itself. Default 64 MiB.</summary>
    public long VmMemoryOverheadMb { get; set; } = 64;

    /// <summary>How often a VM that does not fit is tried again (it is also tried as soon as another VM on the node is deleted or stops). Default 10 s.</summary>
    public TimeSpan AdmissionRetryInterval { get; set; } = TimeSpan.FromSeconds(10);
}

internal sealed class CapacityOptionsValidator : IValidateOptions<CapacityOptions>
{
    public ValidateOptionsResult Validate(string? name, CapacityOptions o)
    {
        var errors = new List<string>();
        if (o.MemoryMb < 0)
        {
            errors.Add($"Capacity:MemoryMb must be 0 (the host's memory) or positive, got {o.MemoryMb}");
        }

        if (o.Cpus < 0)
        {
            errors.Add($"Capacity:Cpus must be 0 (the host's CPUs) or positive, got {o.Cpus}");
        }

        if (o.ReservedMemoryMb < 0 || o.ReservedCpus < 0 || o.VmMemoryOverheadMb < 0)
        {
            errors.Add("Capacity:ReservedMemoryMb, Capacity:ReservedCpus and Capacity:VmMemoryOverheadMb must not be negative");
        }

        if (!(o.CpuOvercommitRatio is > 0 and <= 1000) || double.IsNaN(o.CpuOvercommitRatio))
        {
            errors.Add($"Capacity:CpuOvercommitRatio must be greater than 0 and at most 1000, got {o.CpuOvercommitRatio}");
        }

        if (o.AdmissionRetryInterval <= TimeSpan.Zero)
        {
            errors.Add($"Capacity:AdmissionRetryInterval must be positive, got {o.AdmissionRetryInterval}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

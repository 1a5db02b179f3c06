using Hypercore.Admission;

namespace Hypercore.Daemon.Configuration;

/// <summary>
/// Node capacity and admission (Kubernetes issue 13), flags and TOML keys of the same name, mapped straight to
/// <see cref="CapacityOptions"/>, which validates them at start.
/// </summary>
public static class CapacitySettings
{
    private const string S = CapacityOptions.Section + ":";

    public static readonly DaemonSetting MemoryMb = new("capacity-memory-mb", S + nameof(CapacityOptions.MemoryMb),
        "node memory offered to VMs before the reserve, in MiB; default 0 = MemTotal of /proc/meminfo", "MiB")
    {
        Kind = SettingKind.WholeNumber, Min = 0,
    };

    public static readonly DaemonSetting Cpus = new("capacity-cpus", S + nameof(CapacityOptions.Cpus),
        "node CPUs before the reserve and overcommit; default 0 = the CPUs this process may use", "count")
    {
        Kind = SettingKind.WholeNumber, Min = 0, Max = 100_000,
    };

    public static readonly DaemonSetting ReservedMemoryMb = new("reserved-memory-mb", S + nameof(CapacityOptions.ReservedMemoryMb),
        "memory kept for the host and the daemon, in MiB; default 512", "MiB")
    {
        Kind = SettingKind.WholeNumber, Min = 0,
    };

    public static readonly DaemonSetting ReservedCpus = new("reserved-cpus", S + nameof(CapacityOptions.ReservedCpus),
        "whole CPUs kept for the host; default 0", "count")
    {
        Kind = SettingKind.WholeNumber, Min = 0, Max = 100_000,
    };

    public static readonly DaemonSetting CpuOvercommitRatio = new("cpu-overcommit-ratio", S + nameof(CapacityOptions.CpuOvercommitRatio),
        "vCPUs admitted per host CPU; default 16", "ratio")
    {
        Kind = SettingKind.PositiveNumber, Max = 1000,
    };

    public static readonly DaemonSetting VmMemoryOverheadMb = new("vm-memory-overhead-mb", S + nameof(CapacityOptions.VmMemoryOverheadMb),
        "memory charged per VM on top of its guest memory (the hypervisor process), in MiB; default 64", "MiB")
    {
        Kind = SettingKind.WholeNumber, Min = 0, Max = 1_048_576,
    };

    public static readonly DaemonSetting AdmissionRetry = new("admission-retry", S + nameof(CapacityOptions.AdmissionRetryInterval),
        "how often a VM waiting for room is tried again (also tried when another VM goes); default 10s", "duration")
    {
        Kind = SettingKind.Duration,
    };

    public static readonly IReadOnlyList<DaemonSetting> All =
        [MemoryMb, Cpus, ReservedMemoryMb, ReservedCpus, CpuOvercommitRatio, VmMemoryOverheadMb, AdmissionRetry];
}

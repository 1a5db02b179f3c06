using Hypercore.Consoles;

namespace Hypercore.Daemon.Configuration;

/// <summary>
/// Console log cap and KVM device, as the daemon spells them (flags and TOML keys of the same name), each mapped
/// straight to the owning component's section; those components validate their own options at start.
/// </summary>
public static class NodeDeviceAndConsoleSettings
{
    public static readonly DaemonSetting ConsoleLogMaxBytes = new("console-log-max-bytes", ConsoleLogOptions.Section + ":MaxBytes",
        "largest console log, in bytes, before it is rotated to console.log.1 (one rotated part kept); default 16777216 (16 MiB)", "bytes")
    {
        Kind = SettingKind.WholeNumber, Min = ConsoleLogOptions.MinMaxBytes,
    };

    public static readonly DaemonSetting ConsoleFullScanInterval = new("console-full-scan-interval", ConsoleLogOptions.Section + ":FullScanInterval",
        "how often every directory under run/ is checked for an oversized console log (the VMs that may be running are checked every second); default 1m", "duration")
    {
        Kind = SettingKind.Duration,
    };

    public static readonly DaemonSetting KvmDevice = new("kvm-device", "Firecracker:KvmDevicePath",
        "KVM device firecracker and cloud-hypervisor need before they are reported usable; default /dev/kvm", "path");

    public static readonly IReadOnlyList<DaemonSetting> All = [ConsoleLogMaxBytes, ConsoleFullScanInterval, KvmDevice];

    /// <summary>One KVM device for the node: the Cloud Hypervisor driver takes the same one as Firecracker.</summary>
    public static void AddImplied(IDictionary<string, string?> settings)
    {
        if (settings.TryGetValue(KvmDevice.ConfigKey, out var kvm))
        {
            settings["CloudHypervisor:KvmDevicePath"] = kvm;
        }
    }
}

namespace Hypercore.Daemon.Configuration;

/// <summary>
/// The drivers' settings as the daemon spells them (flags and TOML keys), each mapped straight to the key in the
/// driver's own configuration section. Each driver binds its section and validates it (its IValidateOptions, run at
/// start); the daemon only translates the validators' keys back to these names when it reports a failure
/// (<see cref="DaemonSettings.InUserTerms"/>). What is not given keeps the driver's default; a binary that is given
/// but missing is not a settings error: the provider is reported unusable at start, and a VM asking for it gets
/// ProviderUnavailable naming the path.
/// </summary>
public static class DriverSettings
{
    public static readonly DaemonSetting QemuBinary = new("qemu-bin", "Qemu:BinaryPath", "QEMU binary; default qemu-system-x86_64", "path");
    public static readonly DaemonSetting QemuUser = new("qemu-user", "Qemu:RunAs", "run QEMU as this user (uid:gid or a user name) instead of root; default unset (root)", "uid:gid|user");
    public static readonly DaemonSetting FirecrackerBinary = new("firecracker-bin", "Firecracker:BinaryPath", "firecracker binary; default firecracker on PATH", "path");
    public static readonly DaemonSetting JailerBinary = new("jailer-bin", "Firecracker:Jailer:BinaryPath", "run firecracker through this jailer (needs --jailer-uid, --jailer-gid); default no jailer", "path");
    public static readonly DaemonSetting JailerUid = new("jailer-uid", "Firecracker:Jailer:Uid", "uid the jailer drops to", "uid")
    {
        Kind = SettingKind.WholeNumber, Min = 0, Max = int.MaxValue,
    };

    public static readonly DaemonSetting JailerGid = new("jailer-gid", "Firecracker:Jailer:Gid", "gid the jailer drops to", "gid")
    {
        Kind = SettingKind.WholeNumber, Min = 0, Max = int.MaxValue,
    };

    public static readonly DaemonSetting CloudHypervisorBinary = new("cloud-hypervisor-bin", "CloudHypervisor:BinaryPath", "cloud-hypervisor binary; default cloud-hypervisor on PATH", "path");
    public static readonly DaemonSetting OpsBinary = new("ops-bin", "Unikernel:OpsPath", "run unikernels through this NanoVMs ops (onprem); default: QEMU boots them directly", "path");
    public static readonly DaemonSetting OpsHome = new("ops-home", "Unikernel:OpsHome", "OPS_HOME for --ops-bin; default $OPS_HOME, else ~/.ops", "dir");
    public static readonly DaemonSetting UnikernelQemuBinary = new("unikernel-qemu-bin", "Unikernel:QemuPath", "QEMU for unikernels booted directly; default qemu-system-x86_64", "path");

    public static readonly IReadOnlyList<DaemonSetting> All =
        [QemuBinary, QemuUser, FirecrackerBinary, JailerBinary, JailerUid, JailerGid, CloudHypervisorBinary, OpsBinary, OpsHome, UnikernelQemuBinary];

    /// <summary>Settings implied by others: giving a jailer binary is what turns the jailer on.</summary>
    public static void AddImplied(IDictionary<string, string?> settings)
    {
        if (settings.ContainsKey(JailerBinary.ConfigKey))
        {
            settings["Firecracker:Jailer:Enabled"] = "true";
        }
    }
}

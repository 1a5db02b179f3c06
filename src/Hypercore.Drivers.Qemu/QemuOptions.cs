using Hypercore.Drivers.Vmm;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Hypercore.Composition;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Qemu;

/// <summary>
/// Settings of the QEMU driver (configuration section "Qemu"). Accelerator "auto" (default) uses KVM when /dev/kvm
/// opens and a probe guest actually boots under it (see <see cref="KvmProbeKernel"/>), else TCG.
/// </summary>
public sealed class QemuOptions() : VmmQmpOptions("qemu"), IConfigSection
{
    public const string SectionName = "Qemu";

    public static string ConfigSection => SectionName;

    void IConfigSection.BindSection(IConfiguration section) => section.Bind(this);

    /// <summary>QEMU binary: a file name looked up on PATH, or a path. Default "qemu-system-x86_64".</summary>
    public string BinaryPath { get; set; } = "qemu-system-x86_64";

    /// <summary>
    /// The kernel the KVM probe boots: one the node owns, never a caller's. The daemon sets it to the default
    /// image's kernel (&lt;image dir&gt;/default/vmlinuz). When it is missing, "auto" picks TCG and says why.
    /// </summary>
    public string KvmProbeKernel { get; set; } = "/var/lib/hypercore/images/default/vmlinuz";

    /// <summary>How long the KVM probe waits for "Linux version" on the probe guest's serial console. Default 10 s.</summary>
    public TimeSpan KvmProbeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// TSC frequency in kHz handed to TCG guests as <c>tsc_early_khz=</c>. Under TCG the guest TSC runs at the host
    /// TSC rate, and Linux's PIT calibration fails when the host is busy, leaving the guest without a clocksource
    /// (it hangs early in boot). Null (default) reads it from /proc/cpuinfo when the host TSC is constant;
    /// 0 turns the hint off.
    /// </summary>
    public int? TcgTscKhz { get; set; }

    /// <summary>
    /// Run QEMU as this user instead of root: "uid:gid", or a user name (its uid and primary gid). Privileges are
    /// dropped before exec through <c>setpriv --reuid --regid --clear-groups</c> (QEMU's own -runas dies under
    /// the sandbox's elevateprivileges=deny). The daemon hands the VM's directory, console log and scratch disks
    /// to that user; host-path volumes must already be accessible by it. Null or empty (default): QEMU runs as root.
    /// </summary>
    public string? RunAs { get; set; }

    // snapshots

    /// <summary>How long saving a VM's state (QMP migrate to a file) or loading it on restore may take. Default 5 min.</summary>
    public TimeSpan SnapshotTimeout { get; set; } = TimeSpan.FromMinutes(5);
}

public static class QemuServiceCollectionExtensions
{
    /// <summary>Registers the "qemu" driver: section "Qemu" when the host has configuration, then <paramref name="configure"/>; validated at start.</summary>
    public static IServiceCollection AddQemuDriver(this IServiceCollection services, Action<QemuOptions>? configure = null) =>
        services.AddVmmDriver<QemuDriver, QemuOptions, QemuOptionsValidator>(QemuDriver.ProviderName, configure, sp => new QemuDriver(
            sp.GetRequiredService<IOptions<QemuOptions>>(), sp.GetRequiredService<TimeProvider>(), sp.LoggerFor<QemuDriver>(), sp.GetService<HostAccess.HostPathPolicy>()));
}

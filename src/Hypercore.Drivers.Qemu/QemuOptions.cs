namespace Hypercore.Drivers.Qemu;

/// <summary>Settings of the QEMU driver (configuration section "Qemu").</summary>
public sealed class QemuOptions
{
    public const string SectionName = "Qemu";

    /// <summary>QEMU binary: a file name looked up on PATH, or a path. Default "qemu-system-x86_64".</summary>
    public string BinaryPath { get; set; } = "qemu-system-x86_64";

    /// <summary>
    /// "auto" (default): use KVM when /dev/kvm opens and a probe guest actually boots under it, else TCG.
    /// "kvm" or "tcg" force one.
    /// </summary>
    public string Accelerator { get; set; } = "auto";

    /// <summary>Per-VM directories (qmp.sock, qemu.pid, console.log, vm.json) live in RuntimeDirectory/&lt;uid&gt;/.</summary>
    public string RuntimeDirectory { get; set; } = "/var/lib/hypercore/run/qemu";

    /// <summary>
    /// The kernel the KVM probe boots: one the node owns, never a caller's. The daemon sets it to the default
    /// image's kernel (&lt;image dir&gt;/default/vmlinuz). When it is missing, "auto" picks TCG and says why.
    /// </summary>
    public string KvmProbeKernel { get; set; } = "/var/lib/hypercore/images/default/vmlinuz";

    /// <summary>How long the KVM probe waits for "Linux version" on the probe guest's serial console. Default 10 s.</summary>
    public TimeSpan KvmProbeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Upper bound for one start: launching QEMU until QMP reports the VM running. Default 30 s.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Upper bound for one QMP command (connect attempts are bounded separately). Default 5 s.</summary>
    public TimeSpan QmpTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// TSC frequency in kHz handed to TCG guests as <c>tsc_early_khz=</c>. Under TCG the guest TSC runs at the host
    /// TSC rate, and Linux's PIT calibration fails when the host is busy, leaving the guest without a clocksource
    /// (it hangs early in boot). Null (default) reads it from /proc/cpuinfo when the host TSC is constant;
    /// 0 turns the hint off.
    /// </summary>
    public int? TcgTscKhz { get; set; }
}

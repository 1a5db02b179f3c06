using Hypercore.HostAccess;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Unikernel;

/// <summary>
/// Runs NanoVMs unikernel images. Two ways, chosen by configuration: with <see cref="UnikernelOptions.OpsPath"/>
/// set, through the ops CLI (<c>ops instance create|list|delete -t onprem</c>, which itself starts QEMU and records
/// the instance in OPS_HOME); otherwise by booting the image directly with QEMU as a disk (q35, virtio-blk, QMP for
/// state, pause, resume and ACPI power-off). See docs/drivers.md for why both exist.
/// </summary>
public sealed class UnikernelDriver : IHypervisorDriver
{
    public const string ProviderName = "unikernel";

    private readonly IUnikernelBackend _backend;
    private readonly string _runtimeDirectory;

    public UnikernelDriver(IOptions<UnikernelOptions> options, TimeProvider time, ILogger<UnikernelDriver> log, HostPathPolicy? hostPaths = null)
    {
        var o = options.Value;
        _runtimeDirectory = o.RuntimeDirectory;
        _backend = o.OpsPath.Length > 0 ? new OpsBackend(o, time, log, hostPaths) : new QemuBackend(o, time, log, hostPaths);
    }

    public string Name => ProviderName;

    /// <summary>Direct QEMU: pause, graceful stop, taps, extra disks. Through ops: none of them (ops has no pause or graceful stop).</summary>
    public DriverCapabilities Capabilities => _backend.Capabilities;

    /// <summary>"qemu" or "ops": which path this driver instance takes.</summary>
    public string Mode => _backend.Mode;

    public Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default) =>
        _backend.CheckAvailabilityAsync(cancellationToken);

    public Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default) =>
        _backend.ListAsync(cancellationToken);

    public Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        _backend.InspectAsync(vm, cancellationToken);

    public Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        _backend.StartAsync(vm, cancellationToken);

    public Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        _backend.PauseAsync(vm, cancellationToken);

    public Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        _backend.ResumeAsync(vm, cancellationToken);

    public Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default) =>
        _backend.StopAsync(vm, gracePeriod, cancellationToken);

    public Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        _backend.CleanupAsync(vm, cancellationToken);

    /// <summary>Both paths keep the VM's directory; through ops the console stays in ops' own log, so this file may never appear.</summary>
    public string ConsoleLogPath(MicroVm vm) => new Hypercore.Drivers.Vmm.VmDirectory(_runtimeDirectory, vm.Uid).ConsoleLog;
}

/// <summary>One way of running unikernels; the driver delegates everything to the configured one.</summary>
internal interface IUnikernelBackend
{
    string Mode { get; }

    DriverCapabilities Capabilities { get; }

    Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken ct);

    Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken ct);

    Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken ct);

    Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken ct);

    Task PauseAsync(MicroVm vm, CancellationToken ct);

    Task ResumeAsync(MicroVm vm, CancellationToken ct);

    Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken ct);

    Task CleanupAsync(MicroVm vm, CancellationToken ct);
}

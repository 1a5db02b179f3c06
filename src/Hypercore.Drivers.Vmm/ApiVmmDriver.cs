using Hypercore.HostAccess;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;

namespace Hypercore.Drivers.Vmm;

/// <summary>
/// A <see cref="VmmDriver"/> whose VMM serves an HTTP API on RuntimeDirectory/&lt;uid&gt;/api.sock (Firecracker,
/// Cloud Hypervisor): binary, KVM requirement, default command line and the API client come from
/// <see cref="VmmApiOptions"/>; the hypervisor supplies its endpoints.
/// </summary>
public abstract class ApiVmmDriver<TOptions>(TOptions options, TimeProvider time, ILogger log, HostPathPolicy? hostPaths)
    : VmmDriver(options.RuntimeDirectory, time, log, hostPaths)
    where TOptions : VmmApiOptions
{
    protected const string ApiSocketName = "api.sock";

    protected TOptions Options { get; } = options;

    protected override string ConfiguredBinary => Options.BinaryPath;

    protected override string? CheckHost() =>
        Options.RequireKvm ? KvmDevice.Problem(Options.KvmDevicePath, Name) : null;

    protected override string BaseCmdline(MicroVmSpec spec)
    {
        var args = spec.Kernel.Cmdline.Count > 0 ? spec.Kernel.RenderCmdline() : Options.DefaultCmdline;
        return VmmSetsRootPartition ? args : KernelArgs.WithRootPartition(args, spec);
    }

    /// <summary>True when the VMM itself adds root=PARTUUID= for a root drive given a partuuid (Firecracker).</summary>
    protected virtual bool VmmSetsRootPartition => false;

    /// <summary>A client for the recorded VMM's API socket (one per call; it holds no VMM state).</summary>
    protected UnixSocketApi Api(VmRecord record) => new(record.ControlSocket, Options.ApiPolicy, Time);

    /// <summary>The live VM's record, or NotRunning naming the VM (for calls outside the start/stop skeleton).</summary>
    protected VmRecord RunningRecord(MicroVm vm) =>
        Directory(vm.Uid).ReadRecord() is { } r && VmDirectory.IsRecordedProcessAlive(r)
            ? r
            : throw new DriverException("NotRunning", $"no {Name} process is running for {vm.Key}");
}

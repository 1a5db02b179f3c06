using System.Globalization;
using Hypercore.Drivers.Vmm;
using Hypercore.Drivers.Vmm.Qmp;
using Hypercore.HostAccess;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;

namespace Hypercore.Drivers.Unikernel;

/// <summary>
/// Boots the unikernel image as a disk with QEMU on the shared <see cref="VmmDriver"/> skeleton, serial to
/// console.log, controlled over QMP: query-status for live state, stop/cont for pause/resume, system_powerdown
/// (ACPI) for a graceful stop, then quit, then SIGKILL. -no-reboot makes a guest reboot end QEMU, like a power-off.
/// </summary>
internal sealed class QemuBackend(UnikernelOptions options, TimeProvider time, ILogger log, HostPathPolicy? hostPaths = null)
    : VmmDriver(options.RuntimeDirectory, time, log, hostPaths), IUnikernelBackend
{
    private const string QmpSocketName = "qmp.sock";

    private readonly QmpControl _qmp = new(time, options.QmpTimeout);

    public string Mode => "qemu";

    public override string Name => UnikernelDriver.ProviderName;

    public override DriverCapabilities Capabilities =>
        DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.Tap | DriverCapabilities.BlockDevices;

    protected override string ConfiguredBinary => options.QemuPath;

    protected override string BinaryLabel => "qemu";

    protected override string KernelNotFoundReason => "ImageNotFound";

    protected override string? CheckHost() =>
        options.Accelerator == "kvm" && !File.Exists("/dev/kvm") ? "Unikernel:Accelerator is kvm but /dev/kvm is missing" : null;

    protected override string DescribeAvailable(string path, string version) =>
        $"{version} ({path}; direct boot of NanoVMs images, accelerator {options.Accelerator})";

    /// <summary>A NanoVMs image named by kernel.image is the boot disk itself; otherwise root_volume is (see <see cref="UnikernelImage"/>).</summary>
    protected override bool UsesKernel(MicroVmSpec spec) =>
        UnikernelImage.IsImage(spec.Kernel.Filename is { Length: > 0 } file ? file : spec.Kernel.Image);

    protected override string BaseCmdline(MicroVmSpec spec) => ""; // the image carries its own arguments

    protected override Task<VmmLaunch> LaunchAsync(PreparedSpec prepared, string binary, VmDirectory dir, CancellationToken ct)
    {
        var qmp = dir.File(QmpSocketName);
        VmDirectory.DeleteFile(dir.ConsoleLog); // a fresh boot gets a fresh console
        var args = Arguments(prepared, qmp, dir.ConsoleLog);
        return Task.FromResult(new VmmLaunch
        {
            Executable = binary,
            Arguments = args,
            ControlSocket = qmp,
            ArgvMarker = qmp,
            OutputLog = dir.File("qemu.log"),
            Detail = $"unikernel via qemu ({options.Accelerator}): {BootDisk(prepared).HostPath}",
            Extra = new Dictionary<string, string> { ["mode"] = Mode, ["image"] = BootDisk(prepared).HostPath },
        });
    }

    protected override Task BootAsync(PreparedSpec prepared, VmRecord record, VmDirectory dir, CancellationToken ct) =>
        BootObservedAsync(prepared, record, dir, ct);

    /// <summary>The status QMP first answered is the start's result (no second QMP session).</summary>
    protected override async Task<VmmState?> BootObservedAsync(PreparedSpec prepared, VmRecord record, VmDirectory dir, CancellationToken ct) =>
        QmpControl.Map(await _qmp.WaitUntilAnswersAsync(record.ControlSocket, record.Pid, "qemu", dir.File("qemu.log"), options.StartTimeout, ct));

    protected override async Task<VmmState> QueryAsync(VmRecord record, CancellationToken ct) =>
        QmpControl.Map(await _qmp.StatusAsync(record.ControlSocket, ct));

    protected override string Unreachable(Exception ex) => $"QMP not answering: {ex.Message}";

    protected override Task PauseCoreAsync(VmRecord record, CancellationToken ct) => _qmp.ExecuteAsync(record.ControlSocket, "stop", ct);

    protected override Task ResumeCoreAsync(VmRecord record, CancellationToken ct) => _qmp.ExecuteAsync(record.ControlSocket, "cont", ct);

    protected override Task<bool> RequestPowerOffAsync(VmRecord record, CancellationToken ct) => _qmp.PowerDownAsync(record.ControlSocket, ct);

    protected override async Task<bool> IsGuestOffAsync(VmRecord record, CancellationToken ct) =>
        await _qmp.StatusAsync(record.ControlSocket, ct) == "shutdown";

    protected override Task ShutdownAsync(VmRecord record, CancellationToken ct) => _qmp.ExecuteAsync(record.ControlSocket, "quit", ct);

    internal IReadOnlyList<string> Arguments(PreparedSpec prepared, string qmp, string console)
    {
        var spec = prepared.Spec;
        var boot = BootDisk(prepared);
        var args = new List<string>
        {
            "-name", $"hypercore-{prepared.Vm.Uid}",
            "-machine", options.MachineType,
        };
        args.AddRange(options.Accelerator switch
        {
            "kvm" => ["-accel", "kvm", "-cpu", "host"],
            "tcg" => ["-accel", "tcg", "-cpu", "max"],
            _ => ["-accel", "kvm", "-accel", "tcg", "-cpu", "max"], // QEMU tries them in order
        });
        args.AddRange(
        [
            "-m", spec.MemoryInMb.ToString(CultureInfo.InvariantCulture),
            "-smp", spec.Vcpu.ToString(CultureInfo.InvariantCulture),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            // append=on: the daemon rotates console logs by copy-truncate; an O_APPEND writer lands at the new end.
            "-chardev", $"file,id=console0,path={Escape(console)},append=on", "-serial", "chardev:console0",
            "-qmp", $"unix:{qmp},server=on,wait=off",
            "-drive", $"file={Escape(boot.HostPath)},format=raw,if=none,id=boot{(boot.IsReadOnly ? ",readonly=on" : "")}",
            "-device", "virtio-blk-pci,drive=boot,bootindex=0",
        ]);
        var extra = prepared.Volumes.Where(v => !ReferenceEquals(v, boot)).ToList();
        for (var i = 0; i < extra.Count; i++)
        {
            var disk = extra[i];
            args.AddRange(
            [
                "-drive", $"file={Escape(disk.HostPath)},format=raw,if=none,id=disk{i}{(disk.IsReadOnly ? ",readonly=on" : "")}",
                "-device", $"virtio-blk-pci,drive=disk{i}",
            ]);
        }

        for (var i = 0; i < prepared.Nics.Count; i++)
        {
            args.AddRange(
            [
                "-netdev", $"tap,id=net{i},ifname={prepared.Nics[i].Tap},script=no,downscript=no",
                "-device", $"virtio-net-pci,netdev=net{i},mac={prepared.Nics[i].Mac}",
            ]);
        }

        return args;
    }

    /// <summary>The boot disk: kernel.image when it is an image, else root_volume.</summary>
    private static PreparedVolume BootDisk(PreparedSpec prepared) =>
        prepared.KernelPath is { } image
            ? new PreparedVolume("boot", image, IsReadOnly: false, IsRoot: true, IsScratch: false)
            : prepared.Volumes.FirstOrDefault(v => v.IsRoot) ?? throw UnikernelImage.NoImage(prepared.Spec);

    /// <summary>QEMU option values escape a comma by doubling it.</summary>
    private static string Escape(string path) => path.Replace(",", ",,", StringComparison.Ordinal);
}

internal static partial class UnikernelLog
{
    [LoggerMessage(3200, LogLevel.Information, "{Key}: unikernel started via {Mode} (pid {Pid}, image {Image})")]
    public static partial void Launched(ILogger logger, string key, string mode, int pid, string image);

    [LoggerMessage(3202, LogLevel.Information, "{Key}: unikernel pid {Pid} stopped: {How}")]
    public static partial void Stopped(ILogger logger, string key, int pid, string how);

    [LoggerMessage(3203, LogLevel.Debug, "{Uid}: {Step}: {Message}")]
    public static partial void StepFailed(ILogger logger, string uid, string step, string message);
}

using System.Globalization;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Hypercore.Drivers.Unikernel;

/// <summary>
/// Boots the unikernel image as a disk with QEMU, started detached, serial to console.log, controlled over QMP:
/// query-status for live state, stop/cont for pause/resume, system_powerdown (ACPI) for a graceful stop, then quit,
/// then SIGKILL. -no-reboot makes a guest reboot end QEMU, like a power-off.
/// </summary>
internal sealed class QemuBackend(UnikernelOptions options, TimeProvider time, ILogger log) : IUnikernelBackend
{
    private const string QmpSocketName = "qmp.sock";

    private readonly ResiliencePipeline _qmpPipeline = new ResiliencePipelineBuilder { TimeProvider = time }
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<SocketException>(IsConnectFailure),
            MaxRetryAttempts = 3,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(100),
            MaxDelay = TimeSpan.FromSeconds(1),
        })
        .AddTimeout(options.QmpTimeout)
        .Build();

    public string Mode => "qemu";

    public DriverCapabilities Capabilities =>
        DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.Tap | DriverCapabilities.BlockDevices;

    public async Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken ct)
    {
        try
        {
            var (path, tried) = BinaryLocator.Resolve(options.QemuPath);
            if (path is null)
            {
                return DriverAvailability.Unavailable(BinaryLocator.NotFoundMessage("qemu", tried));
            }

            if (options.Accelerator == "kvm" && !File.Exists("/dev/kvm"))
            {
                return DriverAvailability.Unavailable("Unikernel:Accelerator is kvm but /dev/kvm is missing");
            }

            var version = await HostProcess.RunAsync(path, ["--version"], TimeSpan.FromSeconds(10), ct);
            return version.Succeeded
                ? DriverAvailability.Ok($"{version.StandardOutput.Split('\n')[0].Trim()} ({path}; direct boot of NanoVMs images, accelerator {options.Accelerator})")
                : DriverAvailability.Unavailable($"{path} --version failed: {version.Diagnostic}");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return DriverAvailability.Unavailable("qemu availability check failed: " + ex.Message);
        }
    }

    public async Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken ct)
    {
        var found = new List<VmRuntimeInfo>();
        foreach (var (_, record) in VmDirectory.Scan(options.RuntimeDirectory))
        {
            if (record.Provider == UnikernelDriver.ProviderName && VmDirectory.IsRecordedProcessAlive(record))
            {
                found.Add(await InspectRecordAsync(record, ct));
            }
        }

        return found;
    }

    public async Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken ct)
    {
        var record = Directory(vm.Uid).ReadRecord();
        return record is null ? VmRuntimeInfo.NotFound(vm.Uid) : await InspectRecordAsync(record, ct);
    }

    public async Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken ct)
    {
        var dir = Directory(vm.Uid);
        var existing = dir.ReadRecord();
        if (existing is not null && VmDirectory.IsRecordedProcessAlive(existing))
        {
            var live = await InspectRecordAsync(existing, ct);
            if (live.State is LiveState.Running or LiveState.Paused)
            {
                return live;
            }
        }

        await StopAsync(vm, TimeSpan.Zero, ct);
        var image = UnikernelImage.Resolve(vm.Spec);
        var (qemu, tried) = BinaryLocator.Resolve(options.QemuPath);
        if (qemu is null)
        {
            throw new DriverException(Conditions.ReasonProviderUnavailable, BinaryLocator.NotFoundMessage("qemu", tried));
        }

        dir.Create();
        var qmp = dir.File(QmpSocketName);
        UnixSocketApi.EnsurePathFits(qmp);
        VmDirectory.DeleteFile(qmp);
        VmDirectory.DeleteFile(dir.ConsoleLog); // a fresh boot gets a fresh console

        var taps = new List<string>();
        for (var i = 0; i < vm.Spec.Interfaces.Count; i++)
        {
            var tap = TapDevices.TapName(vm.Uid, i);
            await TapDevices.CreateAsync(tap, vm.Spec.Interfaces[i].Bridge, null, null, ct);
            taps.Add(tap);
        }

        var args = Arguments(vm, image, qmp, dir.ConsoleLog, taps);
        var pid = await HostProcess.StartDetachedAsync(qemu, args, dir.Path, dir.File("qemu.log"), ct);
        var record = new VmRecord
        {
            Uid = vm.Uid,
            Provider = UnikernelDriver.ProviderName,
            Key = vm.Key.ToString(),
            Pid = pid,
            PidStartTicks = HostProcess.StartTicks(pid) ?? 0,
            Binary = qemu,
            ControlSocket = qmp,
            ArgvMarker = qmp,
            ConsoleLog = dir.ConsoleLog,
            StartedAt = time.GetUtcNow(),
            Taps = taps,
            Extra = new Dictionary<string, string> { ["mode"] = Mode, ["image"] = image.BootDisk },
        };
        dir.WriteRecord(record);
        UnikernelLog.Launched(log, vm.Key.ToString(), Mode, pid, image.BootDisk);

        try
        {
            var status = await WaitForQmpAsync(record, dir, ct);
            return Info(record, status);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            UnikernelLog.StartFailed(log, vm.Key.ToString(), ex.Message);
            await KillAndClearAsync(dir, record, vm, CancellationToken.None);
            throw ex as DriverException ?? new DriverException("HypervisorError", "qemu start failed: " + ex.Message, ex);
        }
    }

    public async Task PauseAsync(MicroVm vm, CancellationToken ct) => await CommandAsync(vm, "stop", ct);

    public async Task ResumeAsync(MicroVm vm, CancellationToken ct) => await CommandAsync(vm, "cont", ct);

    public async Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken ct)
    {
        var dir = Directory(vm.Uid);
        var record = dir.ReadRecord();
        if (record is not null && VmDirectory.IsRecordedProcessAlive(record))
        {
            var how = "quit";
            if (gracePeriod > TimeSpan.Zero && await TryQmpAsync(record, "cont", ct) && await TryQmpAsync(record, "system_powerdown", ct))
            {
                how = await HostProcess.WaitForExitAsync(record.Pid, gracePeriod, time, ct)
                    ? "guest powered off"
                    : $"no ACPI power-off within {gracePeriod.TotalSeconds:0.#} s; quit";
            }

            if (HostProcess.IsAlive(record.Pid) && await TryQmpAsync(record, "quit", ct) &&
                !await HostProcess.WaitForExitAsync(record.Pid, TimeSpan.FromSeconds(5), time, ct))
            {
                how += "; killed";
            }

            UnikernelLog.Stopped(log, vm.Key.ToString(), record.Pid, how);
        }

        await KillAndClearAsync(dir, record, vm, ct);
    }

    public async Task CleanupAsync(MicroVm vm, CancellationToken ct)
    {
        await StopAsync(vm, TimeSpan.Zero, ct);
        Directory(vm.Uid).Delete();
    }

    internal IReadOnlyList<string> Arguments(MicroVm vm, UnikernelImage image, string qmp, string console, IReadOnlyList<string> taps)
    {
        var spec = vm.Spec;
        var args = new List<string>
        {
            "-name", $"hypercore-{vm.Uid}",
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
            "-drive", $"file={Escape(image.BootDisk)},format=raw,if=none,id=boot",
            "-device", "virtio-blk-pci,drive=boot,bootindex=0",
        ]);
        for (var i = 0; i < image.ExtraDisks.Count; i++)
        {
            var disk = image.ExtraDisks[i];
            args.AddRange(
            [
                "-drive", $"file={Escape(disk.HostPath)},format=raw,if=none,id=disk{i}{(disk.IsReadOnly ? ",readonly=on" : "")}",
                "-device", $"virtio-blk-pci,drive=disk{i}",
            ]);
        }

        for (var i = 0; i < spec.Interfaces.Count; i++)
        {
            args.AddRange(
            [
                "-netdev", $"tap,id=net{i},ifname={taps[i]},script=no,downscript=no",
                "-device", $"virtio-net-pci,netdev=net{i},mac={TapDevices.GuestMac(vm.Uid, spec.Interfaces[i], i)}",
            ]);
        }

        return args;
    }

    /// <summary>QEMU option values escape a comma by doubling it.</summary>
    private static string Escape(string path) => path.Replace(",", ",,", StringComparison.Ordinal);

    private static bool IsConnectFailure(SocketException ex) =>
        ex.SocketErrorCode is SocketError.ConnectionRefused // nobody listening (yet)
            or SocketError.AddressNotAvailable; // .NET's mapping of ENOENT: the socket file is not there yet

    private VmDirectory Directory(string uid) => new(options.RuntimeDirectory, uid);

    private async Task<JsonNode?> QmpAsync(VmRecord record, string command, CancellationToken ct) =>
        await _qmpPipeline.ExecuteAsync(
            async token =>
            {
                await using var qmp = await QmpClient.ConnectAsync(record.ControlSocket, token);
                return await qmp.ExecuteAsync(command, null, token);
            },
            ct);

    private async Task<bool> TryQmpAsync(VmRecord record, string command, CancellationToken ct)
    {
        try
        {
            await QmpAsync(record, command, ct);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or IOException or TimeoutRejectedException or DriverException)
        {
            UnikernelLog.StepFailed(log, record.Uid, command, ex.Message);
            return false;
        }
    }

    private async Task CommandAsync(MicroVm vm, string command, CancellationToken ct)
    {
        var record = Directory(vm.Uid).ReadRecord() is { } r && VmDirectory.IsRecordedProcessAlive(r)
            ? r
            : throw new DriverException("NotRunning", $"no qemu process is running for {vm.Key}");
        try
        {
            await QmpAsync(record, command, ct);
        }
        catch (Exception ex) when (ex is SocketException or IOException or TimeoutRejectedException)
        {
            throw new DriverException("HypervisorError", $"QMP {command} on {record.ControlSocket} failed: {ex.Message}", ex);
        }
    }

    private async Task<VmRuntimeInfo> InspectRecordAsync(VmRecord record, CancellationToken ct)
    {
        if (!VmDirectory.IsRecordedProcessAlive(record))
        {
            return Info(record, LiveState.Exited) with { Exit = ExitKind.Crashed, Pid = null, Detail = GuestPanic.FromConsole(record.ConsoleLog) ?? $"qemu process {record.Pid} is gone" };
        }

        try
        {
            var status = await QmpAsync(record, "query-status", ct);
            var state = Map(status?["status"]?.GetValue<string>());
            var info = Info(record, state);
            if (state != LiveState.Exited)
            {
                return info;
            }

            var panic = GuestPanic.FromConsole(record.ConsoleLog);
            return status?["status"]?.GetValue<string>() == "shutdown" && panic is null
                ? info with { Exit = ExitKind.GuestShutdown }
                : info with { Exit = ExitKind.Crashed, Detail = panic ?? info.Detail };
        }
        catch (Exception ex) when (ex is SocketException or IOException or TimeoutRejectedException or DriverException)
        {
            return Info(record, LiveState.Unknown) with { Detail = "QMP not answering: " + ex.Message };
        }
    }

    private static LiveState Map(string? status) => status switch
    {
        "running" => LiveState.Running,
        "paused" or "suspended" => LiveState.Paused,
        "prelaunch" or "inmigrate" => LiveState.Created,
        "shutdown" or "internal-error" or "guest-panicked" => LiveState.Exited,
        _ => LiveState.Unknown,
    };

    private VmRuntimeInfo Info(VmRecord record, LiveState state) => new()
    {
        Uid = record.Uid,
        State = state,
        Pid = record.Pid,
        ConsoleLogPath = record.ConsoleLog,
        BootTime = record.StartedAt,
        Detail = $"unikernel via qemu ({options.Accelerator}): {record.Extra.GetValueOrDefault("image")}",
    };

    private async Task<LiveState> WaitForQmpAsync(VmRecord record, VmDirectory dir, CancellationToken ct)
    {
        var ready = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddTimeout(options.StartTimeout)
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<SocketException>(IsConnectFailure).Handle<IOException>(),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Constant,
                Delay = TimeSpan.FromMilliseconds(100),
            })
            .Build();
        try
        {
            return await ready.ExecuteAsync(
                async token =>
                {
                    if (!HostProcess.IsAlive(record.Pid))
                    {
                        throw new DriverException("HypervisorError", $"qemu exited during start: {VmmOutput.Tail(dir.File("qemu.log"))}");
                    }

                    await using var qmp = await QmpClient.ConnectAsync(record.ControlSocket, token);
                    return Map((await qmp.ExecuteAsync("query-status", null, token))?["status"]?.GetValue<string>());
                },
                ct);
        }
        catch (TimeoutRejectedException ex)
        {
            throw new DriverException("HypervisorError", $"qemu QMP socket {record.ControlSocket} did not answer within {options.StartTimeout.TotalSeconds:0.#} s", ex);
        }
    }

    private async Task KillAndClearAsync(VmDirectory dir, VmRecord? record, MicroVm vm, CancellationToken ct)
    {
        if (record is not null && VmDirectory.IsRecordedProcessAlive(record))
        {
            await HostProcess.KillAsync(record.Pid, time, ct);
        }

        VmDirectory.DeleteFile(dir.File(QmpSocketName));
        var taps = (record?.Taps ?? []).Concat(vm.Spec.Interfaces.Select((_, i) => TapDevices.TapName(vm.Uid, i))).Distinct(StringComparer.Ordinal);
        foreach (var tap in taps)
        {
            await TapDevices.DeleteAsync(tap, ct);
        }

        dir.DeleteRecord();
    }
}

internal static partial class UnikernelLog
{
    [LoggerMessage(3200, LogLevel.Information, "{Key}: unikernel started via {Mode} (pid {Pid}, image {Image})")]
    public static partial void Launched(ILogger logger, string key, string mode, int pid, string image);

    [LoggerMessage(3201, LogLevel.Warning, "{Key}: unikernel start failed: {Message}")]
    public static partial void StartFailed(ILogger logger, string key, string message);

    [LoggerMessage(3202, LogLevel.Information, "{Key}: unikernel pid {Pid} stopped: {How}")]
    public static partial void Stopped(ILogger logger, string key, int pid, string how);

    [LoggerMessage(3203, LogLevel.Debug, "{Uid}: {Step}: {Message}")]
    public static partial void StepFailed(ILogger logger, string uid, string step, string message);
}

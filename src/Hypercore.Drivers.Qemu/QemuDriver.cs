using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Hypercore.Drivers.Qemu.Qmp;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Qemu;

/// <summary>
/// Runs each VM as a daemonized <c>qemu-system-x86_64 -M microvm</c> controlled over QMP. Daemonized, not a
/// child: VMs outlive a daemon crash or restart, and vm.json in each VM's runtime directory lets the next daemon
/// find them again (<see cref="ListAsync"/>).
/// </summary>
public sealed partial class QemuDriver : IHypervisorDriver, IDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan QuitWait = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan KillWait = TimeSpan.FromSeconds(10);

    private readonly QemuOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<QemuDriver> _log;
    private readonly AcceleratorMode _mode;
    private readonly QmpConnector _qmp;
    private readonly TapDevices _taps;
    private readonly KvmProbe _probe;
    private readonly Lazy<int?> _tscKhz;
    private readonly SemaphoreSlim _probeLock = new(1, 1);
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _vmLocks = new(StringComparer.Ordinal);
    private AcceleratorChoice? _probed;
    private BinaryVersion? _version;

    public QemuDriver(IOptions<QemuOptions> options, TimeProvider time, ILogger<QemuDriver> log)
    {
        _options = options.Value;
        _time = time;
        _log = log;
        _mode = AcceleratorChoice.TryParse(_options.Accelerator, out var mode)
            ? mode
            : throw new ArgumentException($"Qemu:Accelerator must be auto, kvm or tcg, got \"{_options.Accelerator}\"", nameof(options));
        _qmp = new QmpConnector(time, _options.QmpTimeout);
        _taps = new TapDevices(time);
        _probe = new KvmProbe(time);
        _tscKhz = new Lazy<int?>(() => _options.TcgTscKhz switch
        {
            null => HostTsc.ReadKhz(),
            0 => null,
            var khz => khz,
        });
    }

    public string Name => "qemu";

    public DriverCapabilities Capabilities =>
        DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.Tap |
        DriverCapabilities.Initrd | DriverCapabilities.BlockDevices;

    public async Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default)
    {
        var binary = ResolveBinary(out var tried);
        if (binary is null)
        {
            return DriverAvailability.Unavailable($"qemu binary not found: tried {tried}");
        }

        string version;
        try
        {
            version = await GetVersionAsync(binary, cancellationToken);
        }
        catch (Exception ex) when (ex is DriverException or IOException or System.ComponentModel.Win32Exception)
        {
            return DriverAvailability.Unavailable($"{binary} is not runnable: {ex.Message}");
        }

        var accel = _mode switch
        {
            AcceleratorMode.Kvm => "kvm (configured)",
            AcceleratorMode.Tcg => "tcg (configured)",
            _ => _probed is { } p ? $"{p.Accel} ({p.Reason})" : "auto (KVM is probed at the first start)",
        };
        return DriverAvailability.Ok($"{Path.GetFileName(binary)} {version} at {binary}, accelerator {accel}");
    }

    public async Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        var found = new List<VmRuntimeInfo>();
        if (!Directory.Exists(_options.RuntimeDirectory))
        {
            return found;
        }

        foreach (var path in Directory.EnumerateDirectories(_options.RuntimeDirectory))
        {
            var uid = Path.GetFileName(path);
            if (!VmDirectory.IsSafeUid(uid))
            {
                continue;
            }

            using var held = await LockAsync(uid, cancellationToken);
            var dir = Dir(uid);
            var record = dir.ReadRecord();
            if (record is null || record.Stopped || LivePid(dir, record) is null)
            {
                continue;
            }

            found.Add(await InspectCoreAsync(dir, cancellationToken));
        }

        LogListed(found.Count, _options.RuntimeDirectory);
        return found;
    }

    public async Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        var dir = CheckedDir(vm.Uid);
        using var held = await LockAsync(vm.Uid, cancellationToken);
        return await InspectCoreAsync(dir, cancellationToken);
    }

    public async Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        var dir = CheckedDir(vm.Uid);
        var spec = vm.Spec;
        using var deadline = new Deadline(_time, _options.StartTimeout, cancellationToken);
        using var held = await LockAsync(vm.Uid, cancellationToken);
        try
        {
            var binary = ResolveBinary(out var tried) ?? throw new DriverException(
                Conditions.ReasonProviderUnavailable, $"qemu binary not found: tried {tried}");
            spec = WithScratchDisks(dir, spec);
            var (kernel, initrd) = CheckFiles(spec);

            // Idempotent: a live instance is returned as it is; one the guest powered off is reaped first.
            var existing = await InspectCoreAsync(dir, deadline.Token);
            if (existing.State is LiveState.Running or LiveState.Paused or LiveState.Created or LiveState.Unknown)
            {
                return existing;
            }

            if (existing.State == LiveState.Exited && dir.ReadRecord() is { } old)
            {
                await StopCoreAsync(dir, old, TimeSpan.Zero, deadline.Token);
            }

            var accel = await ResolveAcceleratorAsync(binary, kernel, deadline.Token);
            Directory.CreateDirectory(dir.Path);
            dir.DeleteRuntimeFiles();

            var taps = new List<string>();
            for (var i = 0; i < spec.Interfaces.Count; i++)
            {
                var name = TapDevices.Name(vm.Uid, i);
                taps.Add(name);
                await _taps.EnsureAsync(name, spec.Interfaces[i].Bridge, deadline.Token);
            }

            // Written before launch: a daemon that dies in between still finds the taps and the pid file.
            var record = new VmRecord
            {
                Uid = vm.Uid,
                Namespace = spec.Namespace,
                Id = spec.Id,
                Detail = accel.Detail,
                Taps = taps,
            };
            dir.WriteRecord(record);

            var args = QemuCommandLine.Build(new QemuCommandLine.Inputs(vm with { Spec = spec }, dir, accel, kernel, initrd, taps, accel.IsKvm ? null : _tscKhz.Value));
            var started = _time.GetUtcNow();
            var run = await HostProcesses.RunAsync(binary, args, _options.StartTimeout, _time, deadline.Token);
            if (run.ExitCode != 0)
            {
                throw new DriverException("HypervisorError", $"qemu exited with code {run.ExitCode}: {run.Output}");
            }

            var pid = dir.ReadPidFile() ?? throw new DriverException("HypervisorError", $"qemu started but wrote no pid file {dir.PidFile}");
            dir.WriteRecord(record with { Pid = pid, StartedAt = started });

            var info = await InspectCoreAsync(dir, deadline.Token);
            LogStarted(vm.Uid, pid, accel.Detail, _time.GetUtcNow() - started);
            return info;
        }
        catch (OperationCanceledException) when (deadline.Expired && !cancellationToken.IsCancellationRequested)
        {
            throw new DriverException("StartTimeout", $"qemu did not start within {_options.StartTimeout.TotalSeconds:0.#} s");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new DriverException(Conditions.ReasonProviderUnavailable, $"cannot run qemu: {ex.Message}", ex);
        }
    }

    public Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        ControlAsync(vm, "stop", cancellationToken);

    public Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        ControlAsync(vm, "cont", cancellationToken);

    public async Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default)
    {
        var dir = CheckedDir(vm.Uid);
        using var held = await LockAsync(vm.Uid, cancellationToken);
        var record = dir.ReadRecord();
        if (record is null)
        {
            // Nothing we started, or a record lost to a crash mid-start: only QEMU's own pid file can tell.
            if (dir.ReadPidFile() is { } pid && HostProcesses.IsAlive(pid, vm.Uid))
            {
                await KillAsync(pid, vm.Uid, cancellationToken);
            }

            if (dir.Exists)
            {
                dir.DeleteRuntimeFiles();
            }

            return;
        }

        await StopCoreAsync(dir, record, gracePeriod, cancellationToken);
    }

    public async Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        var dir = CheckedDir(vm.Uid);
        await StopAsync(vm, TimeSpan.Zero, cancellationToken);
        using (await LockAsync(vm.Uid, cancellationToken))
        {
            var taps = (dir.ReadRecord()?.Taps ?? [])
                .Concat(Enumerable.Range(0, vm.Spec.Interfaces.Count).Select(i => TapDevices.Name(vm.Uid, i)))
                .Distinct(StringComparer.Ordinal);
            foreach (var tap in taps)
            {
                await _taps.RemoveAsync(tap, cancellationToken);
            }

            if (dir.Exists)
            {
                Directory.Delete(dir.Path, recursive: true);
            }

            LogCleanedUp(vm.Uid);
        }

        if (_vmLocks.TryRemove(vm.Uid, out var gate))
        {
            gate.Dispose();
        }
    }

    public string ConsoleLogPath(MicroVm vm) => CheckedDir(vm.Uid).ConsoleLog;

    public void Dispose()
    {
        _probeLock.Dispose();
        foreach (var gate in _vmLocks.Values)
        {
            gate.Dispose();
        }
    }

    private async Task<VmRuntimeInfo> InspectCoreAsync(VmDirectory dir, CancellationToken ct)
    {
        var record = dir.ReadRecord();
        if (record is null || record.Stopped)
        {
            return VmRuntimeInfo.NotFound(dir.Uid);
        }

        var pid = record.Pid ?? dir.ReadPidFile();
        if (pid is null)
        {
            return VmRuntimeInfo.NotFound(dir.Uid); // the launch never got as far as a process
        }

        var info = new VmRuntimeInfo
        {
            Uid = dir.Uid,
            State = LiveState.Unknown,
            Pid = pid,
            ConsoleLogPath = dir.ConsoleLog,
            BootTime = record.StartedAt,
            Detail = record.Detail,
        };
        if (!HostProcesses.IsAlive(pid.Value, dir.Uid))
        {
            return info with
            {
                State = LiveState.Exited,
                Exit = ExitKind.Crashed,
                Detail = Join(record.Detail, $"qemu (pid {pid}) ended without being stopped"),
            };
        }

        string status;
        try
        {
            await using var qmp = await _qmp.ConnectAsync(dir.QmpSocket, ct);
            status = await qmp.QueryStatusAsync(ct);
        }
        catch (QmpException ex)
        {
            LogQmpUnreachable(dir.Uid, pid.Value, ex.Message);
            return info with { Detail = Join(record.Detail, $"QMP unreachable: {ex.Message}") };
        }

        return status switch
        {
            "running" => info with { State = LiveState.Running },
            "paused" or "suspended" => info with { State = LiveState.Paused },
            "io-error" => info with { State = LiveState.Paused, Detail = Join(record.Detail, "paused on an I/O error") },
            "prelaunch" or "inmigrate" => info with { State = LiveState.Created },
            "shutdown" => GuestPanicLine(dir) is { } panic
                ? info with { State = LiveState.Exited, Exit = ExitKind.Crashed, Detail = Join(record.Detail, panic) }
                : info with { State = LiveState.Exited, Exit = ExitKind.GuestShutdown, Detail = Join(record.Detail, "the guest powered off") },
            "guest-panicked" or "internal-error" =>
                info with { State = LiveState.Exited, Exit = ExitKind.Crashed, Detail = Join(record.Detail, GuestPanicLine(dir) ?? $"qemu status {status}") },
            _ => info with { Detail = Join(record.Detail, $"qemu status {status}") },
        };
    }

    /// <summary>The panic line of the current boot, if the guest panicked (QEMU is Linux-only anyway; the guard is for the analyzer).</summary>
    private static string? GuestPanicLine(VmDirectory dir) => OperatingSystem.IsLinux() ? Vmm.GuestPanic.FromConsole(dir.ConsoleLog) : null;

    private async Task StopCoreAsync(VmDirectory dir, VmRecord record, TimeSpan grace, CancellationToken ct)
    {
        var pid = LivePid(dir, record);
        if (pid is not null)
        {
            var how = await EndProcessAsync(dir, pid.Value, grace, ct);
            LogStopped(dir.Uid, pid.Value, how);
        }

        dir.DeleteRuntimeFiles();
        if (!record.Stopped || record.Pid is not null)
        {
            dir.WriteRecord(record with { Stopped = true, Pid = null });
        }
    }

    /// <summary>system_powerdown and wait (grace > 0), then quit, then SIGKILL; returns how it ended.</summary>
    private async Task<string> EndProcessAsync(VmDirectory dir, int pid, TimeSpan grace, CancellationToken ct)
    {
        QmpClient? qmp = null;
        try
        {
            qmp = await _qmp.ConnectAsync(dir.QmpSocket, ct);
            var how = "quit";
            if (grace > TimeSpan.Zero)
            {
                var status = await qmp.QueryStatusAsync(ct);
                if (status is "paused" or "suspended")
                {
                    await qmp.ExecuteAsync("cont", null, ct); // a paused guest cannot see the power button
                    status = "running";
                }

                if (status == "running")
                {
                    await qmp.ExecuteAsync("system_powerdown", null, ct);
                    var until = _time.GetUtcNow() + grace;
                    while (_time.GetUtcNow() < until && !HostProcesses.IsZombieOrGone(pid))
                    {
                        if (await qmp.QueryStatusAsync(ct) == "shutdown")
                        {
                            how = "guest powered off";
                            break;
                        }

                        await Task.Delay(PollInterval, _time, ct);
                    }

                    if (how == "quit")
                    {
                        how = $"no power-off within {grace.TotalSeconds:0.#} s, quit";
                    }
                }
            }

            try
            {
                await qmp.ExecuteAsync("quit", null, ct);
            }
            catch (QmpException ex) when (ex.ErrorClass is "Disconnected")
            {
                // QEMU may close the socket before the reply is read
            }

            if (await WaitGoneAsync(pid, QuitWait, ct))
            {
                return how;
            }
        }
        catch (QmpException ex)
        {
            LogQmpUnreachable(dir.Uid, pid, ex.Message);
        }
        finally
        {
            if (qmp is not null)
            {
                await qmp.DisposeAsync();
            }
        }

        await KillAsync(pid, dir.Uid, ct);
        return "killed";
    }

    private async Task KillAsync(int pid, string uid, CancellationToken ct)
    {
        if (!HostProcesses.IsAlive(pid, uid))
        {
            return;
        }

        HostProcesses.Kill(pid);
        if (!await WaitGoneAsync(pid, KillWait, ct))
        {
            throw new DriverException("HypervisorError", $"qemu (pid {pid}) is still there {KillWait.TotalSeconds:0} s after SIGKILL");
        }
    }

    private async Task<bool> WaitGoneAsync(int pid, TimeSpan timeout, CancellationToken ct)
    {
        var until = _time.GetUtcNow() + timeout;
        while (!HostProcesses.IsZombieOrGone(pid))
        {
            if (_time.GetUtcNow() >= until)
            {
                return false;
            }

            await Task.Delay(PollInterval / 4, _time, ct);
        }

        return true;
    }

    private async Task ControlAsync(MicroVm vm, string command, CancellationToken ct)
    {
        var dir = CheckedDir(vm.Uid);
        using var held = await LockAsync(vm.Uid, ct);
        var record = dir.ReadRecord();
        if (record is null || record.Stopped || LivePid(dir, record) is null)
        {
            throw new DriverException("NotRunning", $"{command}: no running qemu for VM {vm.Key} (uid {vm.Uid})");
        }

        try
        {
            await using var qmp = await _qmp.ConnectAsync(dir.QmpSocket, ct);
            var status = await qmp.QueryStatusAsync(ct);
            if (status == "shutdown")
            {
                throw new DriverException("NotRunning", $"{command}: the guest of {vm.Key} has powered off");
            }

            await qmp.ExecuteAsync(command, null, ct);
            LogControl(vm.Uid, command);
        }
        catch (QmpException ex)
        {
            throw new DriverException("HypervisorError", $"{command} on {vm.Key}: {ex.Message}", ex);
        }
    }

    private async Task<AcceleratorChoice> ResolveAcceleratorAsync(string binary, string kernel, CancellationToken ct)
    {
        switch (_mode)
        {
            case AcceleratorMode.Kvm:
                return new AcceleratorChoice("kvm", "configured");
            case AcceleratorMode.Tcg:
                return new AcceleratorChoice("tcg", "configured");
        }

        if (_probed is { } done)
        {
            return done;
        }

        await _probeLock.WaitAsync(ct);
        try
        {
            if (_probed is { } raced)
            {
                return raced;
            }

            var result = await _probe.RunAsync(binary, kernel, _options.KvmProbeTimeout, ct);
            _probed = result.Usable ? new AcceleratorChoice("kvm", result.Reason) : new AcceleratorChoice("tcg", result.Reason);
            if (result.Usable)
            {
                LogKvmUsable(result.Reason);
            }
            else
            {
                LogKvmUnusable(result.Reason);
            }

            return _probed;
        }
        finally
        {
            _probeLock.Release();
        }
    }

    /// <summary>
    /// A volume with a size but no host path is a scratch disk: a sparse raw file in the VM's directory, made once,
    /// kept across restarts and removed with the VM.
    /// </summary>
    private static MicroVmSpec WithScratchDisks(VmDirectory dir, MicroVmSpec spec)
    {
        VolumeSpec Resolve(VolumeSpec v)
        {
            if (v.HostPath.Length > 0 || v.SizeInMb is not > 0)
            {
                return v;
            }

            Directory.CreateDirectory(dir.Path);
            var path = Path.Combine(dir.Path, $"scratch-{v.Id}.img");
            if (!File.Exists(path))
            {
                using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
                file.SetLength((long)v.SizeInMb.Value * 1024 * 1024);
            }

            return v with { HostPath = path };
        }

        return spec with
        {
            RootVolume = spec.RootVolume is null ? null : Resolve(spec.RootVolume),
            AdditionalVolumes = spec.AdditionalVolumes.Select(Resolve).ToList(),
        };
    }

    private static (string Kernel, string? Initrd) CheckFiles(MicroVmSpec spec)
    {
        var kernel = QemuCommandLine.ResolvePath(spec.Kernel.Image, spec.Kernel.Filename);
        if (!File.Exists(kernel))
        {
            throw new DriverException("KernelNotFound", $"kernel image not found: {kernel}");
        }

        string? initrd = null;
        if (spec.Initrd is not null)
        {
            initrd = QemuCommandLine.ResolvePath(spec.Initrd.Image, spec.Initrd.Filename);
            if (!File.Exists(initrd))
            {
                throw new DriverException("InitrdNotFound", $"initrd not found: {initrd}");
            }
        }

        foreach (var v in QemuCommandLine.Volumes(spec).Where(v => !File.Exists(v.HostPath)))
        {
            throw new DriverException("VolumeNotFound", $"volume \"{v.Id}\": {v.HostPath} not found");
        }

        if (spec.Interfaces.FirstOrDefault(i => i.Type != InterfaceType.Tap) is { } other)
        {
            throw new DriverException(Conditions.ReasonUnsupported, $"interface \"{other.DeviceId}\": the qemu driver supports tap interfaces only, not {other.Type}");
        }

        if (QemuCommandLine.CheckDeviceCount(spec) is { } tooMany)
        {
            throw new DriverException("TooManyDevices", tooMany);
        }

        return (kernel, initrd);
    }

    private static int? LivePid(VmDirectory dir, VmRecord record) =>
        (record.Pid ?? dir.ReadPidFile()) is { } pid && HostProcesses.IsAlive(pid, dir.Uid) ? pid : null;

    private VmDirectory Dir(string uid) => new(_options.RuntimeDirectory, uid);

    private VmDirectory CheckedDir(string uid) =>
        VmDirectory.IsSafeUid(uid) ? Dir(uid) : throw new DriverException("InvalidUid", $"uid \"{uid}\" cannot name a runtime directory");

    private async Task<IDisposable> LockAsync(string uid, CancellationToken ct)
    {
        var gate = _vmLocks.GetOrAdd(uid, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct);
        return new Releaser(gate);
    }

    private string? ResolveBinary(out string tried)
    {
        var configured = _options.BinaryPath;
        if (configured.Contains('/', StringComparison.Ordinal))
        {
            tried = configured;
            return IsExecutable(configured) ? Path.GetFullPath(configured) : null;
        }

        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries);
        tried = $"{configured} in PATH ({string.Join(':', dirs)})";
        return dirs.Select(d => Path.Combine(d, configured)).FirstOrDefault(IsExecutable);
    }

    private static bool IsExecutable(string path)
    {
        try
        {
            const UnixFileMode exec = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            return File.Exists(path) && !OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & exec) != 0;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private async Task<string> GetVersionAsync(string binary, CancellationToken ct)
    {
        var stamp = File.GetLastWriteTimeUtc(binary);
        if (_version is { } cached && cached.Path == binary && cached.Stamp == stamp)
        {
            return cached.Version;
        }

        var run = await HostProcesses.RunAsync(binary, ["--version"], TimeSpan.FromSeconds(15), _time, ct);
        var match = VersionPattern().Match(run.Stdout);
        if (run.ExitCode != 0 || !match.Success)
        {
            throw new DriverException(Conditions.ReasonProviderUnavailable, $"--version exited with {run.ExitCode}: {run.Output}");
        }

        _version = new BinaryVersion(binary, stamp, match.Groups[1].Value);
        return _version.Version;
    }

    private static string Join(string? first, string second) => string.IsNullOrEmpty(first) ? second : $"{first}; {second}";

    [GeneratedRegex(@"version (\d+\.\d+(?:\.\d+)?)")]
    private static partial Regex VersionPattern();

    private sealed record BinaryVersion(string Path, DateTime Stamp, string Version);

    private sealed class Releaser(SemaphoreSlim gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Release();
            }
        }
    }
}

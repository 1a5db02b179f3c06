using System.Net.Sockets;
using Hypercore.Bootstrap;
using Hypercore.Drivers.Vmm.Bootstrap;
using Hypercore.Drivers.Vmm.Qmp;
using Hypercore.HostAccess;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging;
using Polly.Timeout;

namespace Hypercore.Drivers.Vmm;

/// <summary>
/// The one skeleton every hypervisor that runs as a detached host process shares. It owns the VM directory and its
/// record (vm.json), adoption (pid + process start time + a marker in the command line), idempotent start,
/// kill-and-clear when a start fails, taps and MACs, binary lookup and version probe, and the prepared spec
/// (host-path policy, kernel/initrd resolution, scratch disks, volumes, network devices, kernel command line).
/// A hypervisor supplies only its own part: <see cref="LaunchAsync"/> (arguments), <see cref="BootAsync"/> (its API
/// calls after launch), <see cref="QueryAsync"/> (state mapping), pause/resume and the power-off request.
/// </summary>
public abstract partial class VmmDriver : IHypervisorDriver
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    // Per-VM gates, held only while in use (VmGates.cs).
    private readonly VmGates _locks = new();
    private readonly BinaryVersionCache _version;
    private readonly DriverBinary _binary;
    private readonly ILogger _logger;

    /// <param name="hostPaths">
    /// The node's host-path policy. The daemon always passes its configured one; null (library use and tests that
    /// build a driver by hand) still refuses non-regular files, "..", and unlisted block devices, but accepts any root.
    /// </param>
    protected VmmDriver(string runtimeDirectory, TimeProvider time, ILogger log, HostPathPolicy? hostPaths)
    {
        RuntimeDirectory = runtimeDirectory;
        Time = time;
        _logger = log;
        HostPaths = hostPaths ?? new HostPathPolicy(new HostAccessOptions { ImageDirectories = ["/"], VolumeRoots = ["/"] });
        _version = new BinaryVersionCache(GetType().Name);
        _binary = new DriverBinary(time);
        _exits.Exited += ProcessEnded; // VmmDriver.Exits.cs: before any LiveStateChanged subscriber
    }

    /// <summary>Kubernetes issue 13: decides once whether hypervisors start in systemd scopes; tests inject their own.</summary>
    public ISystemdCheck SystemdCheck { get; set; } = new HostSystemdCheck();

    private string? _systemdRun;
    private bool _systemdDecided;

    /// <summary>systemd-run's path when hypervisors start in their own scopes, else null (decided and logged once).</summary>
    public string? ScopeLauncher()
    {
        if (!_systemdDecided)
        {
            _systemdRun = SystemdCheck.SystemdRun(out var why);
            _systemdDecided = true;
            if (_systemdRun is null)
            {
                LogNoSystemd(Name, why);
            }
            else
            {
                LogSystemdScopes(Name, SystemdScope.Slice);
            }
        }

        return _systemdRun;
    }

    public abstract string Name { get; }

    public abstract DriverCapabilities Capabilities { get; }

    protected TimeProvider Time { get; }

    protected ILogger Log => _logger;

    protected HostPathPolicy HostPaths { get; }

    protected string RuntimeDirectory { get; }

    /// <summary>The configured executable: a path, or a bare name looked up on PATH.</summary>
    protected abstract string ConfiguredBinary { get; }

    /// <summary>
    /// <see cref="ConfiguredBinary"/> resolved (<see cref="DriverBinary"/>: PATH is not walked again on every call while
    /// the binary found last is still there), the paths tried, and the binary's modification time from the stat that
    /// checked it (the version cache's key).
    /// </summary>
    protected (string? Path, IReadOnlyList<string> Tried, HostFileTime Modified) ResolveBinary() => _binary.Resolve(ConfiguredBinary);

    /// <summary>How messages name the hypervisor ("qemu", "firecracker", ...).</summary>
    protected virtual string BinaryLabel => Name;

    /// <summary>After the shutdown request of <see cref="ShutdownAsync"/>, how long the process gets before SIGKILL.</summary>
    protected virtual TimeSpan ExitTimeout => TimeSpan.FromSeconds(5);

    public Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var (path, tried, modified) = ResolveBinary();
            if (path is null)
            {
                return Task.FromResult(DriverAvailability.Unavailable(BinaryLocator.NotFoundMessage(BinaryLabel, tried)));
            }

            if (CheckHost() is { } problem)
            {
                return Task.FromResult(DriverAvailability.Unavailable(problem));
            }

            // Issue 15 (alloc7): the reconciler asks on every pass. The binary is still looked up and checked each time
            // (above, one stat that also gives the modification time the version cache is keyed on); only an answer that
            // would be built again from the same path, version and description state is the last one (its text, its
            // task: ~0.6 KB a pass).
            if (_version.Cached(path, modified) is not { } version)
            {
                return CheckVersionAsync(path, modified, cancellationToken);
            }

            var state = AvailabilityDescriptionState;
            if (Volatile.Read(ref _lastAvailable) is { } last && last.Path == path && ReferenceEquals(last.Version, version) && Equals(last.State, state))
            {
                return last.Answer;
            }

            var answer = Task.FromResult(DriverAvailability.Ok(DescribeAvailable(path, version)));
            Volatile.Write(ref _lastAvailable, new AvailableAnswer(path, version, state, answer));
            return answer;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return Task.FromResult(Unusable(ex));
        }
    }

    private async Task<DriverAvailability> CheckVersionAsync(string path, HostFileTime modified, CancellationToken cancellationToken)
    {
        try
        {
            var version = await _version.GetAsync(path, modified, cancellationToken);
            return version is null
                ? DriverAvailability.Unavailable($"{path} --version failed: the binary is not runnable here")
                : DriverAvailability.Ok(DescribeAvailable(path, version));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return Unusable(ex);
        }
    }

    private DriverAvailability Unusable(Exception ex) => DriverAvailability.Unavailable($"{BinaryLabel} availability check failed: {ex.Message}");

    /// <summary>The last Ok answer of <see cref="CheckAvailabilityAsync"/> and what it was built from.</summary>
    private AvailableAnswer? _lastAvailable;

    private sealed record AvailableAnswer(string Path, string Version, object? State, Task<DriverAvailability> Answer);

    /// <summary>
    /// What <see cref="DescribeAvailable"/> reads besides the path and version, when that can change while the daemon runs
    /// (compared with <see cref="object.Equals(object?, object?)"/>); null when nothing does.
    /// </summary>
    protected virtual object? AvailabilityDescriptionState => null;

    public async Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        var found = new List<VmRuntimeInfo>();
        foreach (var (dir, record) in VmDirectory.Scan(RuntimeDirectory))
        {
            if (record.Provider == Name && VmDirectory.IsRecordedProcessAlive(record))
            {
                using var held = await LockAsync(dir.Uid, cancellationToken);
                found.Add(await InspectRecordAsync(record, cancellationToken));
            }
        }

        return found;
    }

    public async Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        var dir = Directory(vm.Uid);
        using var held = await LockAsync(vm.Uid, cancellationToken);
        return dir.ReadRecord() is { } record ? await InspectRecordAsync(record, cancellationToken) : VmRuntimeInfo.NotFound(vm.Uid);
    }

    public Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        StartAsync(new StartContext(vm), cancellationToken);

    public async Task<VmRuntimeInfo> StartAsync(StartContext context, CancellationToken cancellationToken = default)
    {
        var vm = context.Vm;
        var ct = cancellationToken;
        var dir = Directory(vm.Uid);
        using var held = await LockAsync(vm.Uid, ct);
        if (dir.ReadRecord() is { } existing && VmDirectory.IsRecordedProcessAlive(existing))
        {
            var live = await InspectRecordAsync(existing, ct);
            if (live.State is LiveState.Running or LiveState.Paused or LiveState.Unknown)
            {
                return live; // idempotent; and a VMM that merely does not answer is never replaced
            }
        }

        // A half-configured, powered-off or dead instance: clear it before starting afresh.
        await StopCoreAsync(vm, dir, TimeSpan.Zero, ct);

        var (binary, tried, _) = ResolveBinary();
        if (binary is null)
        {
            throw new DriverException(Conditions.ReasonProviderUnavailable, BinaryLocator.NotFoundMessage(BinaryLabel, tried));
        }

        VmRecord? record = null;
        try
        {
            var prepared = await PrepareAsync(context, dir, ct);
            var launch = await LaunchAsync(prepared, binary, dir, ct);
            UnixSocketApi.EnsurePathFits(launch.ControlSocket);
            DeleteSocket(launch.ControlSocket); // VMMs refuse to bind over a stale socket
            var output = launch.OutputLog ?? dir.File("vmm.log");
            var (executable, arguments) = (launch.Executable, launch.Arguments);
            if (ScopeLauncher() is { } systemdRun)
            {
                (executable, arguments) = SystemdScope.Wrap(systemdRun, vm.Uid, vm.Spec.MemoryInMb, executable, arguments);
            }

            var pid = await HostProcess.StartDetachedAsync(executable, arguments, dir.Path, output, ct, launch.InheritedFiles);
            record = new VmRecord
            {
                Uid = vm.Uid,
                Provider = Name,
                Key = vm.Key.ToString(),
                Pid = pid,
                PidStartTicks = HostProcess.StartTicks(pid) ?? 0,
                Binary = binary,
                ControlSocket = launch.ControlSocket,
                ArgvMarker = launch.ArgvMarker,
                ConsoleLog = dir.ConsoleLog,
                StartedAt = Time.GetUtcNow(),
                Taps = [.. prepared.Nics.Select(n => n.Tap)],
                Detail = launch.Detail,
                Extra = WithWritableDisks(launch.Extra, prepared),
            };
            dir.WriteRecord(record);
            LogLaunched(vm.Key.ToString(), BinaryLabel, pid, launch.ControlSocket);
            WatchExit(record); // issue 15: VmmDriver.Exits.cs

            var booted = await BootObservedAsync(prepared, record, dir, ct);
            record = record with { StartedAt = Time.GetUtcNow() };
            dir.WriteRecord(record);
            return booted is { } state ? Observed(BaseInfo(record), record, state) : await InspectRecordAsync(record, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            LogStartFailed(vm.Key.ToString(), BinaryLabel, ex.Message);
            await KillAndClearAsync(dir, record, vm, CancellationToken.None);
            throw ex switch
            {
                DriverException d => d,
                TimeoutRejectedException or OperationCanceledException => new DriverException("StartTimeout", $"{BinaryLabel} did not start in time: {ex.Message}", ex),
                _ => new DriverException("HypervisorError", $"{BinaryLabel} start failed: {ex.Message}", ex),
            };
        }
    }

    /// <summary>Idempotent for every hypervisor: a VM the VMM already reports paused is left as it is.</summary>
    public Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        ControlAsync(vm, "pause", async (record, ct) =>
        {
            if ((await QueryAsync(record, ct)).State != LiveState.Paused)
            {
                await PauseCoreAsync(record, ct);
            }
        }, cancellationToken);

    /// <summary>Idempotent for every hypervisor: a VM the VMM already reports running is left as it is.</summary>
    public Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default) =>
        ControlAsync(vm, "resume", async (record, ct) =>
        {
            if ((await QueryAsync(record, ct)).State != LiveState.Running)
            {
                await ResumeCoreAsync(record, ct);
            }
        }, cancellationToken);

    public async Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default)
    {
        var dir = Directory(vm.Uid);
        using var held = await LockAsync(vm.Uid, cancellationToken);
        await StopCoreAsync(vm, dir, gracePeriod, cancellationToken);
    }

    public async Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        var dir = Directory(vm.Uid);
        using (await LockAsync(vm.Uid, cancellationToken))
        {
            var record = dir.ReadRecord();
            if (record is not null && VmDirectory.IsRecordedProcessAlive(record))
            {
                await TryAsync(record, "before cleanup", () => BeforeCleanupAsync(record, cancellationToken));
            }

            await StopCoreAsync(vm, dir, TimeSpan.Zero, cancellationToken);
            await AfterCleanupAsync(vm, record, cancellationToken);
            dir.Delete();
            LogCleanedUp(vm.Uid, BinaryLabel);
        }
    }

    /// <summary>A host problem that makes the provider unusable (e.g. /dev/kvm missing), or null.</summary>
    protected virtual string? CheckHost() => null;

    /// <summary>The availability detail for a runnable binary.</summary>
    protected virtual string DescribeAvailable(string path, string version) => $"{version} ({path})";

    /// <summary>Throws the refusals that are this hypervisor's own (device limits, interface types).</summary>
    protected virtual void Refuse(MicroVmSpec spec)
    {
    }

    /// <summary>Condition reason when the kernel file is missing.</summary>
    protected virtual string KernelNotFoundReason => "KernelNotFound";

    /// <summary>Whether this spec boots a kernel (false: e.g. a unikernel disk image that boots itself).</summary>
    protected virtual bool UsesKernel(MicroVmSpec spec) => true;

    /// <summary>The kernel command line before kernel.add_network_config is applied.</summary>
    protected abstract string BaseCmdline(MicroVmSpec spec);

    /// <summary>The uid/gid that should own the taps (an unprivileged VMM opens them itself), or null for root.</summary>
    protected virtual (int Uid, int Gid)? TapOwner => null;

    /// <summary>The executable and arguments for one prepared VM. May do host work (a jail, an accelerator probe).</summary>
    protected abstract Task<VmmLaunch> LaunchAsync(PreparedSpec prepared, string binary, VmDirectory dir, CancellationToken ct);

    /// <summary>After launch: configure and boot over the VMM's API, or wait until it answers. Throwing kills and clears.</summary>
    protected abstract Task BootAsync(PreparedSpec prepared, VmRecord record, VmDirectory dir, CancellationToken ct);

    /// <summary>
    /// <see cref="BootAsync"/>, returning the live state the VMM reported while it was waited for when that answer is
    /// still current, or null to ask again. A QEMU answers one QMP client at a time and, while its TCG guest boots,
    /// takes seconds to accept the next: the second session the start used to open cost up to 2.5 s per VM with 20
    /// starting at once (issue 15, density: bench/NOTES.md).
    /// </summary>
    protected virtual async Task<VmmState?> BootObservedAsync(PreparedSpec prepared, VmRecord record, VmDirectory dir, CancellationToken ct)
    {
        await BootAsync(prepared, record, dir, ct);
        return null;
    }

    /// <summary>The live state of a process that is known to be alive. Transport failures mean "Unknown", never "dead".</summary>
    protected abstract Task<VmmState> QueryAsync(VmRecord record, CancellationToken ct);

    protected abstract Task PauseCoreAsync(VmRecord record, CancellationToken ct);

    protected abstract Task ResumeCoreAsync(VmRecord record, CancellationToken ct);

    /// <summary>Asks the guest to power off (resuming it first if needed); false when there is nothing to ask.</summary>
    protected abstract Task<bool> RequestPowerOffAsync(VmRecord record, CancellationToken ct);

    /// <summary>True once the guest is off while the VMM still runs (e.g. QEMU in status "shutdown").</summary>
    protected virtual Task<bool> IsGuestOffAsync(VmRecord record, CancellationToken ct) => Task.FromResult(false);

    /// <summary>Asks the VMM process itself to exit (QMP quit, vmm.shutdown); the default leaves it to SIGKILL.</summary>
    protected virtual Task ShutdownAsync(VmRecord record, CancellationToken ct) => Task.CompletedTask;

    /// <summary>Before a live VM is stopped for cleanup (e.g. delete it inside the VMM).</summary>
    protected virtual Task BeforeCleanupAsync(VmRecord record, CancellationToken ct) => Task.CompletedTask;

    /// <summary>After the VM is stopped and before its directory goes (e.g. remove a jail).</summary>
    protected virtual Task AfterCleanupAsync(MicroVm vm, VmRecord? record, CancellationToken ct) => Task.CompletedTask;

    /// <summary>How a VMM that is alive but does not answer is described.</summary>
    protected virtual string Unreachable(Exception ex) => $"{BinaryLabel} API not answering: {ex.Message}";

    /// <summary>Failures of talking to a VMM that leave its state unknown (it may still be alive and well).</summary>
    protected static bool IsTransient(Exception ex) =>
        ex is HttpRequestException or TimeoutRejectedException or QmpException or SocketException or IOException or DriverException;

    protected VmDirectory Directory(string uid) => new(RuntimeDirectory, uid);

    /// <summary>Derived from the uid and the runtime directory, never from stored status (which a caller may have written).</summary>
    public string ConsoleLogPath(MicroVm vm) => Directory(vm.Uid).ConsoleLog;

    protected static string Join(string? first, string second) => string.IsNullOrEmpty(first) ? second : $"{first}; {second}";

    /// <summary>Checks the spec against the host-path policy and makes everything the VMM needs on the host.</summary>
    protected async Task<PreparedSpec> PrepareAsync(StartContext context, VmDirectory dir, CancellationToken ct)
    {
        var vm = context.Vm;
        var spec = vm.Spec;
        if (spec.Initrd is not null && !Capabilities.HasFlag(DriverCapabilities.Initrd))
        {
            // Booting without it would silently run another guest than the one asked for.
            throw new DriverException("Unsupported", $"provider \"{Name}\" cannot boot an initrd; remove initrd from the spec");
        }

        Refuse(spec);
        var trusted = TrustedImageFields.Of(context);
        HostPaths.Check(trusted.Untrusted(spec), checkKernel: UsesKernel(spec) && !trusted.Kernel);
        string? kernel = null;
        string? initrd = null;
        if (UsesKernel(spec))
        {
            kernel = trusted.Kernel
                ? HostPaths.CheckTrusted("kernel.image", spec.Kernel.Image, context.TrustedPaths)
                : HostPaths.CheckKernel("kernel", spec.Kernel.Image, spec.Kernel.Filename);
            if (!File.Exists(kernel))
            {
                throw new DriverException(KernelNotFoundReason, $"kernel image not found: {Named(spec.Kernel.Image, spec.Kernel.Filename)}");
            }

            if (spec.Initrd is not null)
            {
                initrd = trusted.Initrd
                    ? HostPaths.CheckTrusted("initrd.image", spec.Initrd.Image, context.TrustedPaths)
                    : HostPaths.CheckKernel("initrd", spec.Initrd.Image, spec.Initrd.Filename);
                if (!File.Exists(initrd))
                {
                    throw new DriverException("InitrdNotFound", $"initrd not found: {Named(spec.Initrd.Image, spec.Initrd.Filename)}");
                }
            }
        }

        dir.Create();
        var volumes = new List<PreparedVolume>();
        var restore = RestoreOf(context);
        var scratch = HostPathPolicy.Volumes(spec).Select(v => v.Volume)
            .Where(v => v.HostPath.Length == 0 && v.SizeInMb > 0 && !File.Exists(ScratchPath(dir, v)) && SavedDisk(restore, v) is null).ToList();
        HostPaths.CheckScratchDisks(scratch, dir.Path);
        foreach (var (volume, field) in HostPathPolicy.Volumes(spec))
        {
            var isRoot = ReferenceEquals(volume, spec.RootVolume);
            if (SavedDisk(restore, volume) is { } saved)
            {
                // The saved copy is of a disk the daemon may not have made: checked like one, except that an image
                // volume's overlay may keep naming the cached disk the images step vouched for this start.
                var restored = await RestoreDiskAsync(restore!, saved, dir, ct);
                var allowedBacking = trusted.CopyOnWrite.Contains(volume.Id)
                    ? HostPaths.CheckTrusted($"{field} source.container_source", volume.HostPath, context.TrustedPaths)
                    : null;
                volumes.Add(new PreparedVolume(volume.Id, restored, IsReadOnly: false, isRoot, IsScratch: true)
                    .Checked($"{field} (restored from snapshot)", allowedBacking));
                continue;
            }

            if (volume.HostPath.Length == 0)
            {
                if (volume.SizeInMb is not > 0)
                {
                    throw new DriverException("VolumeNotFound", $"{field}: neither host_path nor size_in_mb is set");
                }

                var path = ScratchPath(dir, volume);
                if (!File.Exists(path))
                {
                    // Sparse: a scratch disk costs only what the guest writes; kept across restarts, removed with the VM.
                    using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
                    file.SetLength((long)volume.SizeInMb.Value * 1024 * 1024);
                }

                volumes.Add(new PreparedVolume(volume.Id, path, volume.IsReadOnly, isRoot, IsScratch: true));
                continue;
            }

            if (trusted.Volumes.Contains(volume.Id))
            {
                // Images (issue 11): a cached disk. Read-only volumes share it; a writable one gets this VM's own
                // copy-on-write view in the VM directory (kept across restarts like a scratch disk, removed with the VM).
                var cached = HostPaths.CheckTrusted($"{field} source.container_source", volume.HostPath, context.TrustedPaths);
                if (!trusted.CopyOnWrite.Contains(volume.Id))
                {
                    volumes.Add(new PreparedVolume(volume.Id, cached, volume.IsReadOnly, isRoot, IsScratch: false).Checked(field));
                    continue;
                }

                // The daemon's own overlay names the cached disk as its backing file, and nothing else.
                // size_in_mb grows this VM's view (the images step refused a size below the image's).
                var size = Math.Max(new FileInfo(cached).Length, (volume.SizeInMb ?? 0) * 1024L * 1024);
                var view = await CopyOnWriteViewAsync(cached, dir, volume.Id, size, ct);
                volumes.Add(new PreparedVolume(volume.Id, view, volume.IsReadOnly, isRoot, IsScratch: true).Checked(field, allowedBacking: cached));
                continue;
            }

            var real = HostPaths.CheckVolume(volume, field);
            if (!File.Exists(real))
            {
                throw new DriverException("VolumeNotFound", $"{field}: {volume.HostPath} not found");
            }

            // Read right before launch; see docs/security.md for the window between this check and QEMU's open.
            volumes.Add(new PreparedVolume(volume.Id, real, volume.IsReadOnly, isRoot, IsScratch: false).Checked(field));
        }

        var nics = new List<PreparedNic>();
        for (var i = 0; i < spec.Interfaces.Count; i++)
        {
            var nic = spec.Interfaces[i];
            if (nic.Type == InterfaceType.Macvtap)
            {
                // Made by the network start step on a parent the node allows; never from the spec alone.
                if (context.Items.TryGetValue(TapDevices.MacvtapItem, out var made) && made is IReadOnlyDictionary<string, string> devices &&
                    devices.TryGetValue(nic.DeviceId, out var device))
                {
                    nics.Add(new PreparedNic(nic.DeviceId, TapDevices.MacvtapName(vm.Uid, i), TapDevices.GuestMac(vm.Uid, nic, i), nic, device));
                    continue;
                }

                throw new DriverException(Conditions.ReasonUnsupported,
                    $"interface \"{nic.DeviceId}\": MACVTAP needs the node's network step, which made no macvtap for it");
            }

            var tap = TapDevices.TapName(vm.Uid, i);
            await TapDevices.CreateAsync(tap, nic.Bridge, TapOwner?.Uid, TapOwner?.Gid, ct);
            nics.Add(new PreparedNic(nic.DeviceId, tap, TapDevices.GuestMac(vm.Uid, nic, i), nic));
        }

        var cloudInit = await PrepareCloudInitAsync(vm, dir, nics, volumes, ct);
        return new PreparedSpec
        {
            Vm = vm,
            Context = context,
            KernelPath = kernel,
            InitrdPath = initrd,
            Volumes = volumes,
            Nics = nics,
            KernelCmdline = KernelArgs.WithNetworkConfig(BaseCmdline(spec), spec),
            CloudInit = cloudInit,
        };
    }

    /// <summary>Guest bootstrap: whether the cloud-init data reaches the guest on a NoCloud seed disk (label cidata).</summary>
    protected virtual bool UsesSeedDisk => false;

    /// <summary>
    /// Guest bootstrap: the cloud-init files for a provider with a metadata service, and with <see cref="UsesSeedDisk"/>
    /// the seed disk made from them in the VM directory, attached read-only after the spec's volumes.
    /// </summary>
    private async Task<IReadOnlyDictionary<string, string>?> PrepareCloudInitAsync(
        MicroVm vm, VmDirectory dir, IReadOnlyList<PreparedNic> nics, List<PreparedVolume> volumes, CancellationToken ct)
    {
        if (!Capabilities.HasFlag(DriverCapabilities.MetadataService) || !CloudInitSeed.IsNeeded(vm.Spec))
        {
            VmDirectory.DeleteFile(dir.File(SeedDisk.FileName)); // from a start whose spec still had metadata
            return null;
        }

        // Every API refuses these at Create; a spec written straight into the store (e.g. a Kubernetes object) is not.
        if (GuestMetadataRules.Validate(vm.Spec.Metadata) is { Count: > 0 } problems)
        {
            throw new DriverException("InvalidMetadata", string.Join("; ", problems));
        }

        var files = CloudInitSeed.Files(vm, [.. nics.Select(n => new GuestNic(n.Spec, n.Mac))]);
        if (UsesSeedDisk)
        {
            var path = dir.File(SeedDisk.FileName);
            await SeedDisk.BuildAsync(path, files, ct);
            var id = SeedDisk.Label;
            for (var n = 2; volumes.Any(v => v.Id == id); n++)
            {
                id = $"{SeedDisk.Label}-{n}";
            }

            volumes.Add(new PreparedVolume(id, path, IsReadOnly: true, IsRoot: false, IsScratch: true));
            LogSeedDisk(vm.Key.ToString(), path, string.Join(", ", files.Keys));
        }

        return files;
    }

    /// <summary>Waits until the process exits or the guest reports itself off; false when the grace period ran out.</summary>
    protected async Task<bool> WaitGuestOffAsync(VmRecord record, TimeSpan grace, CancellationToken ct)
    {
        var deadline = Time.GetUtcNow() + grace;
        while (Time.GetUtcNow() < deadline)
        {
            if (!HostProcess.IsAlive(record.Pid))
            {
                return true;
            }

            try
            {
                if (await IsGuestOffAsync(record, ct))
                {
                    return true;
                }
            }
            catch (Exception ex) when (IsTransient(ex))
            {
                // the VMM is going away
            }

            await Task.Delay(PollInterval, Time, ct);
        }

        return !HostProcess.IsAlive(record.Pid);
    }

    private static VmRuntimeInfo BaseInfo(VmRecord record) => new()
    {
        Uid = record.Uid,
        State = LiveState.Unknown,
        Pid = record.Pid,
        ConsoleLogPath = record.ConsoleLog,
        BootTime = record.StartedAt,
        Detail = record.Detail,
    };

    /// <summary>What the VMM reported, with a panic told apart from a power-off by the console of the last boot.</summary>
    private static VmRuntimeInfo Observed(VmRuntimeInfo info, VmRecord record, VmmState state)
    {
        // A guest that panics and reboots ends its VMM like a power-off does (QEMU -no-reboot, the VMMs exit):
        // only the console of the last boot tells them apart, for every hypervisor alike.
        if (state.State == LiveState.Exited && GuestPanic.FromConsole(record.ConsoleLog) is { } panic)
        {
            return info with { State = LiveState.Exited, Exit = ExitKind.Crashed, Detail = panic };
        }

        return info with
        {
            State = state.State,
            Exit = state.Exit,
            Detail = state.Detail is null ? record.Detail : Join(record.Detail, state.Detail),
        };
    }

    private async Task<VmRuntimeInfo> InspectRecordAsync(VmRecord record, CancellationToken ct)
    {
        var info = BaseInfo(record);
        if (!IsAlive(record)) // issue 15: VmmDriver.Exits.cs
        {
            ProcessEnded(record.Uid); // without pidfds (or before the watch said so) the inspection is the first to know
            return info with
            {
                State = LiveState.Exited,
                Exit = ExitKind.Crashed,
                Detail = GuestPanic.FromConsole(record.ConsoleLog) ?? Join(record.Detail, $"{BinaryLabel} (pid {record.Pid}) ended without being stopped"),
            };
        }

        WatchExit(record); // adopted after a daemon restart: watched from its first inspection on

        try
        {
            return Observed(info, record, await QueryAsync(record, ct));
        }
        catch (Exception ex) when (IsTransient(ex))
        {
            LogUnreachable(record.Uid, record.Pid, ex.Message);
            return info with { Detail = Join(record.Detail, Unreachable(ex)) };
        }
    }

    private async Task ControlAsync(MicroVm vm, string what, Func<VmRecord, CancellationToken, Task> action, CancellationToken ct)
    {
        var dir = Directory(vm.Uid);
        using var held = await LockAsync(vm.Uid, ct);
        var record = dir.ReadRecord() is { } r && VmDirectory.IsRecordedProcessAlive(r)
            ? r
            : throw new DriverException("NotRunning", $"{what}: no {BinaryLabel} process is running for {vm.Key}");
        try
        {
            await action(record, ct);
        }
        catch (Exception ex) when (IsTransient(ex) && ex is not DriverException)
        {
            throw new DriverException("HypervisorError", $"{what} on {vm.Key}: {ex.Message}", ex);
        }
    }

    private async Task StopCoreAsync(MicroVm vm, VmDirectory dir, TimeSpan grace, CancellationToken ct)
    {
        _exits.Unwatch(vm.Uid); // a stop on purpose is no crash to report
        var record = dir.ReadRecord();
        if (record is not null && VmDirectory.IsRecordedProcessAlive(record))
        {
            var how = "stopped";
            if (grace > TimeSpan.Zero && await TryAsync(record, "power-off request", () => RequestPowerOffAsync(record, ct)))
            {
                how = await WaitGuestOffAsync(record, grace, ct)
                    ? "guest powered off"
                    : $"no power-off within {grace.TotalSeconds:0.#} s";
            }

            if (HostProcess.IsAlive(record.Pid))
            {
                await TryAsync(record, "shutdown", async () =>
                {
                    await ShutdownAsync(record, ct);
                    return true;
                });
                if (!await HostProcess.WaitForExitAsync(record.Pid, ExitTimeout, Time, ct))
                {
                    how += "; killed";
                }
            }

            LogStopped(vm.Key.ToString(), BinaryLabel, record.Pid, how);
        }

        await KillAndClearAsync(dir, record, vm, ct);
    }

    /// <summary>Kills the process if alive and removes socket, taps, record and pid file (keeps console.log and scratch disks).</summary>
    private async Task KillAndClearAsync(VmDirectory dir, VmRecord? record, MicroVm vm, CancellationToken ct)
    {
        _exits.Unwatch(vm.Uid);
        if (record is not null && VmDirectory.IsRecordedProcessAlive(record))
        {
            await HostProcess.KillAsync(record.Pid, Time, ct);
        }

        if (record is not null && record.ControlSocket.Length > 0)
        {
            DeleteSocket(record.ControlSocket);
        }

        var taps = (record?.Taps ?? []).Concat(vm.Spec.Interfaces.Select((_, i) => TapDevices.TapName(vm.Uid, i))).Distinct(StringComparer.Ordinal);
        foreach (var tap in taps)
        {
            await TapDevices.DeleteAsync(tap, ct);
        }

        dir.DeleteRecord();
        AfterClear(dir, vm.Uid);
    }

    private async Task<bool> TryAsync(VmRecord record, string step, Func<Task<bool>> action)
    {
        try
        {
            return await action();
        }
        catch (Exception ex) when (IsTransient(ex))
        {
            LogStepFailed(record.Uid, step, ex.Message);
            return false;
        }
    }

    private Task<bool> TryAsync(VmRecord record, string step, Func<Task> action) =>
        TryAsync(record, step, async () =>
        {
            await action();
            return true;
        });

    private static void DeleteSocket(string socket)
    {
        VmDirectory.DeleteFile(socket);
        VmDirectory.DeleteFile(socket + ".lock");
    }

    private static string ScratchPath(VmDirectory dir, VolumeSpec volume) => dir.File($"scratch-{volume.Id}.img");

    /// <summary>
    /// Images (issue 11): this VM's writable view of a cached, shared disk, made once in the VM directory. The default
    /// is a reflink copy where the file system can share blocks (btrfs, xfs) and a sparse copy elsewhere; QEMU
    /// overrides it with a qcow2 overlay. <paramref name="sizeBytes"/> (at least the cached disk's) is the view's size;
    /// the part past the cached disk reads zeros. Returns the view's path.
    /// </summary>
    protected virtual async Task<string> CopyOnWriteViewAsync(string cachedDisk, VmDirectory dir, string volumeId, long sizeBytes, CancellationToken ct)
    {
        var view = dir.File($"image-{volumeId}.raw");
        if (File.Exists(view))
        {
            return view;
        }

        var temp = view + ".tmp";
        File.Delete(temp);
        var result = await HostProcess.RunAsync("cp", ["--reflink=auto", "--sparse=always", "--", cachedDisk, temp], TimeSpan.FromMinutes(10), ct);
        if (!result.Succeeded)
        {
            File.Delete(temp);
            throw new DriverException("VolumeNotFound", $"volume \"{volumeId}\": could not copy the cached image disk {cachedDisk}: {result.Diagnostic}");
        }

        if (new FileInfo(temp).Length < sizeBytes)
        {
            using var grow = new FileStream(temp, FileMode.Open, FileAccess.Write);
            grow.SetLength(sizeBytes); // sparse: costs only what the guest writes there
        }

        File.Move(temp, view);
        return view;
    }

    private static string Named(string image, string? filename) => string.IsNullOrEmpty(filename) ? image : Path.Combine(image, filename);

    // issue 15 (alloc7): every inspect takes this lock, nearly always free: a ValueTask then allocates nothing, a Task did.
    private ValueTask<IDisposable> LockAsync(string uid, CancellationToken ct) => _locks.EnterAsync(uid, ct);

    /// <summary>VMs whose gate is held or waited for now (issue 15: an idle VM keeps none); for tests.</summary>
    internal int GatesInUse => _locks.Count;

    [LoggerMessage(3550, LogLevel.Information, "{Key}: {Vmm} started (pid {Pid}, control socket {Socket})")]
    private partial void LogLaunched(string key, string vmm, int pid, string socket);

    [LoggerMessage(3551, LogLevel.Warning, "{Key}: {Vmm} start failed: {Message}")]
    private partial void LogStartFailed(string key, string vmm, string message);

    [LoggerMessage(3552, LogLevel.Information, "{Key}: {Vmm} pid {Pid} stopped: {How}")]
    private partial void LogStopped(string key, string vmm, int pid, string how);

    [LoggerMessage(1440, LogLevel.Warning, "{Vmm}: hypervisors start as detached processes, not in systemd scopes: {Why}; they stay in this daemon's cgroup (in a pod they end with it)")]
    private partial void LogNoSystemd(string vmm, string why);

    [LoggerMessage(1441, LogLevel.Information, "{Vmm}: hypervisors start in their own systemd scopes under {Slice}")]
    private partial void LogSystemdScopes(string vmm, string slice);

    [LoggerMessage(3553, LogLevel.Debug, "{Uid}: {Step}: {Message}")]
    private partial void LogStepFailed(string uid, string step, string message);

    [LoggerMessage(3554, LogLevel.Warning, "{Uid}: pid {Pid} alive but its control socket does not answer: {Message}")]
    private partial void LogUnreachable(string uid, int pid, string message);

    [LoggerMessage(3555, LogLevel.Information, "{Uid}: {Vmm} VM cleaned up, all files removed")]
    private partial void LogCleanedUp(string uid, string vmm);

    [LoggerMessage(3600, LogLevel.Information, "{Key}: cloud-init seed disk {Path} made ({Files})")]
    private partial void LogSeedDisk(string key, string path, string files);
}

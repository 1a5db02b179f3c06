using System.Text.RegularExpressions;
using Hypercore.Drivers.Vmm;
using Hypercore.Drivers.Vmm.Qmp;
using Hypercore.HostAccess;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Qemu;

/// <summary>
/// Runs each VM as a detached <c>qemu-system-x86_64 -M microvm</c> (seccomp sandbox on) controlled over QMP.
/// Detached, not a child: VMs outlive a daemon crash or restart, and vm.json in each VM's runtime directory lets
/// the next daemon adopt them. The skeleton (directory, record, adoption, taps, prepared spec) is <see cref="VmmDriver"/>;
/// this class adds QEMU's arguments, the accelerator choice, and QMP state mapping with panic detection.
/// </summary>
public sealed partial class QemuDriver : VmmDriver, IDisposable
{
    private const string QmpSocketName = "qmp.sock";
    private const string StatusSocketName = "qmps.sock";

    /// <summary>
    /// With Qemu:RunAs, the one directory the QEMU user may write to (its QMP sockets): the VM's directory stays root's,
    /// because the daemon writes vm.json, the pid file, the seed disk and rotates the console there as root and trusts
    /// vm.json's pid, binary and taps. A QEMU user owning it could plant <c>vm.json.tmp -&gt; /etc/passwd</c> or a
    /// forged vm.json naming any host process or interface (found in the s27 review).
    /// </summary>
    private const string UserDirectoryName = "vmm";

    private readonly QemuOptions _options;
    private readonly AcceleratorMode _mode;
    private readonly QmpControl _qmp;
    private readonly QmpStatusSessions _status;
    private readonly KvmProbe _probe;
    private readonly Lazy<int?> _tscKhz;
    private readonly SemaphoreSlim _probeLock = new(1, 1);
    private readonly QemuUser? _runAs;
    private AcceleratorChoice? _probed;

    public QemuDriver(IOptions<QemuOptions> options, TimeProvider time, ILogger<QemuDriver> log, HostPathPolicy? hostPaths = null)
        : base(options.Value.RuntimeDirectory, time, log, hostPaths)
    {
        _options = options.Value;
        _mode = AcceleratorChoice.TryParse(_options.Accelerator, out var mode)
            ? mode
            : throw new ArgumentException($"Qemu:Accelerator must be auto, kvm or tcg, got \"{_options.Accelerator}\"", nameof(options));
        _runAs = string.IsNullOrEmpty(_options.RunAs) ? null
            : QemuUser.TryResolve(_options.RunAs, out var user) is { } bad
                ? throw new ArgumentException($"Qemu:RunAs {bad}", nameof(options))
                : user;
        _qmp = new QmpControl(time, _options.QmpTimeout);
        _status = new QmpStatusSessions(time, _options.QmpTimeout);
        _status.Event += OnStatusEvent; // issue 15, idle4: QemuDriver.Events.cs
        _probe = new KvmProbe(time);
        _tscKhz = new Lazy<int?>(() => _options.TcgTscKhz switch
        {
            null => HostTsc.ReadKhz(),
            0 => null,
            var khz => khz,
        });
    }

    public const string ProviderName = "qemu";

    public override string Name => ProviderName;

    public override DriverCapabilities Capabilities =>
        DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.Tap |
        DriverCapabilities.Initrd | DriverCapabilities.BlockDevices | DriverCapabilities.Macvtap | DriverCapabilities.Snapshot |
        DriverCapabilities.MetadataService; // guest bootstrap: a cloud-init seed disk

    protected override string ConfiguredBinary => _options.BinaryPath;

    /// <summary>The accelerator probed at the first start changes the description.</summary>
    protected override object? AvailabilityDescriptionState => _probed;

    protected override string DescribeAvailable(string path, string version)
    {
        var accel = _mode switch
        {
            AcceleratorMode.Kvm => "kvm (configured)",
            AcceleratorMode.Tcg => "tcg (configured)",
            _ => _probed is { } p ? $"{p.Accel} ({p.Reason})" : "auto (KVM is probed at the first start)",
        };
        var number = VersionPattern().Match(version) is { Success: true } m ? m.Groups[1].Value : version;
        return $"{Path.GetFileName(path)} {number} at {path}, accelerator {accel}";
    }

    protected override void Refuse(MicroVmSpec spec)
    {
        if (QemuCommandLine.CheckDeviceCount(spec) is { } tooMany)
        {
            throw new DriverException("TooManyDevices", tooMany);
        }
    }

    /// <summary>Guest bootstrap: spec.metadata reaches the guest on a NoCloud seed disk.</summary>
    protected override bool UsesSeedDisk => true;

    /// <summary>Taps are created for the QEMU user, which opens them after dropping root.</summary>
    protected override (int Uid, int Gid)? TapOwner => _runAs is { } u ? (u.Uid, u.Gid) : null;

    protected override string BaseCmdline(MicroVmSpec spec) => QemuCommandLine.KernelCmdline(spec, tcg: false, tscKhz: null);

    protected override async Task<VmmLaunch> LaunchAsync(PreparedSpec prepared, string binary, VmDirectory dir, CancellationToken ct)
    {
        var accel = await ResolveAcceleratorAsync(binary, ct);
        var qmp = _runAs is null ? dir.File(QmpSocketName) : Path.Combine(dir.File(UserDirectoryName), QmpSocketName);
        var status = StatusSocketFor(qmp);
        VmDirectory.DeleteFile(status);
        var arguments = QemuCommandLine.Build(new QemuCommandLine.Inputs(prepared, dir, accel, accel.IsKvm ? null : _tscKhz.Value, qmp,
            UnixSocketApi.PathFits(status) ? status : null));
        arguments = WithIncoming(arguments, prepared, accel);
        var executable = binary;
        if (_runAs is { } user)
        {
            executable = await PrepareForUserAsync(user, prepared, dir, accel, ct);
            arguments = [$"--reuid={user.Uid}", $"--regid={user.Gid}", "--clear-groups", "--", binary, .. arguments];
        }

        return new VmmLaunch
        {
            // setpriv execs QEMU in place: the recorded pid, its start time and its argv (the QMP path) stay QEMU's.
            Executable = executable,
            Arguments = arguments,
            ControlSocket = qmp,
            ArgvMarker = qmp,
            OutputLog = dir.File("qemu.log"),
            Detail = accel.Detail,
            Extra = new Dictionary<string, string> { [AccelKey] = accel.Accel },

            // Macvtaps (node networking): QEMU gets each /dev/tapN as an open fd (-netdev tap,fd=N), in nic order.
            InheritedFiles = [.. prepared.Nics.Where(n => n.CharDevice is not null).Select(n => n.CharDevice!)],
        };
    }

    protected override Task BootAsync(PreparedSpec prepared, VmRecord record, VmDirectory dir, CancellationToken ct) =>
        BootObservedAsync(prepared, record, dir, ct);

    /// <summary>The status QMP first answered is the start's result, unless a snapshot restore changes it after.</summary>
    protected override async Task<VmmState?> BootObservedAsync(PreparedSpec prepared, VmRecord record, VmDirectory dir, CancellationToken ct)
    {
        var status = await _qmp.WaitUntilAnswersAsync(record.ControlSocket, record.Pid, "qemu", dir.File("qemu.log"), _options.StartTimeout, ct);
        if (RestoreOf(prepared.Context) is { } restore)
        {
            await IncomingAsync(record, dir, restore, resume: prepared.Spec.State != DesiredState.Paused, ct);
            return null;
        }

        return QmpControl.Map(status);
    }

    /// <summary>A panic (pvpanic's "guest-panicked", or a "shutdown" after a panic reboot) is told apart by the skeleton from the console.</summary>
    protected override async Task<VmmState> QueryAsync(VmRecord record, CancellationToken ct) =>
        QmpControl.Map(await _status.StatusAsync(record.Uid, record.Pid, StatusSocketFor(record.ControlSocket), ct) ??
            await _qmp.StatusAsync(record.ControlSocket, ct)); // a QEMU started before the status monitor existed

    /// <summary>Issue 15: status sessions kept open now, one per running VM polled (tests, metrics).</summary>
    public int KeptStatusSessions => _status.Count;

    /// <summary>Issue 15: the process ended, so does its kept status session.</summary>
    protected override void ProcessEnded(string uid) => _status.Forget(uid);

    /// <summary>Issue 15: the kept status session and its socket go with the process.</summary>
    protected override void AfterClear(VmDirectory dir, string uid)
    {
        _status.Forget(uid);
        VmDirectory.DeleteFile(dir.File(StatusSocketName));
    }

    /// <summary>Issue 15: the monitor socket of the daemon's kept status session, beside the main QMP socket.</summary>
    private static string StatusSocketFor(string qmpSocket) => Path.Combine(Path.GetDirectoryName(qmpSocket) ?? "", StatusSocketName);

    protected override string Unreachable(Exception ex) => $"QMP unreachable: {ex.Message}";

    protected override Task PauseCoreAsync(VmRecord record, CancellationToken ct) => ControlAsync(record, "stop", ct);

    protected override Task ResumeCoreAsync(VmRecord record, CancellationToken ct) => ControlAsync(record, "cont", ct);

    /// <summary>
    /// Images (issue 11): a qcow2 overlay backed by the cached raw disk: made in-process (no qemu-img start) in well
    /// under a millisecond of work whatever the disk's size, and only this VM's writes land in it. The cached disk is never
    /// written (QEMU opens a backing file read-only). A size above the cached disk's (size_in_mb) reads zeros there.
    /// </summary>
    protected override Task<string> CopyOnWriteViewAsync(string cachedDisk, VmDirectory dir, string volumeId, long sizeBytes, CancellationToken ct)
    {
        var view = dir.File($"image-{volumeId}.qcow2");
        if (File.Exists(view))
        {
            // Not fsync'd when made (it holds nothing of the guest's until the guest writes, and QEMU flushes those
            // as the guest asks): a power loss right after can leave it without its header, and then it is made
            // again. A valid header is kept whatever it names; the drivers' check refuses a backing file it may not use.
            if (DiskFormats.Read(view).IsQcow2)
            {
                return Task.FromResult(view);
            }

            File.Delete(view);
        }

        var temp = dir.File($"image-{volumeId}.tmp");
        File.Delete(temp);
        try
        {
            Qcow2Overlay.Create(temp, cachedDisk, DiskFormats.Raw, sizeBytes, flushToDisk: false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            File.Delete(temp);
            throw new DriverException("VolumeNotFound", $"volume \"{volumeId}\": could not make a qcow2 overlay of the cached image disk {cachedDisk}: {ex.Message}");
        }

        File.Move(temp, view);
        return Task.FromResult(view);
    }

    protected override Task<bool> RequestPowerOffAsync(VmRecord record, CancellationToken ct) => _qmp.PowerDownAsync(record.ControlSocket, ct);

    protected override async Task<bool> IsGuestOffAsync(VmRecord record, CancellationToken ct) =>
        await _qmp.StatusAsync(record.ControlSocket, ct) == "shutdown";

    protected override Task ShutdownAsync(VmRecord record, CancellationToken ct) => _qmp.ExecuteAsync(record.ControlSocket, "quit", ct);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _probeLock.Dispose();
            _status.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>
    /// Hands what the daemon made for this VM (its directory, console log, scratch disks) to the QEMU user, and checks
    /// that the user can open everything else QEMU opens; a caller's file is never chowned. Returns setpriv's path.
    /// </summary>
    private static async Task<string> PrepareForUserAsync(QemuUser user, PreparedSpec prepared, VmDirectory dir, AcceleratorChoice accel, CancellationToken ct)
    {
        var (setpriv, tried) = BinaryLocator.Resolve("setpriv");
        if (setpriv is null)
        {
            throw new DriverException(Conditions.ReasonProviderUnavailable, $"Qemu:RunAs needs setpriv (util-linux) to drop privileges; {BinaryLocator.NotFoundMessage("setpriv", tried)}");
        }

        var needs = new List<(string Path, string What, bool Write)>();
        if (prepared.KernelPath is { } kernel)
        {
            needs.Add((kernel, "kernel", false));
        }

        if (prepared.InitrdPath is { } initrd)
        {
            needs.Add((initrd, "initrd", false));
        }

        needs.AddRange(prepared.Volumes.Where(v => !v.IsScratch).Select(v => (v.HostPath, $"volume \"{v.Id}\"", !v.IsReadOnly)));
        if (accel.IsKvm)
        {
            needs.Add(("/dev/kvm", "KVM device", true));
        }

        // QEMU opens /dev/net/tun itself to attach to the tap the daemon made for it (Debian's default mode is 0666).
        if (prepared.Nics.Count > 0)
        {
            needs.Add(("/dev/net/tun", "tun device", true));
        }

        // One process asks for every path at once (test's -a); only when that fails is each asked alone, to name it.
        if (needs.Count > 0 && !await AccessibleAsync(setpriv, user, needs, ct))
        {
            foreach (var (path, what, write) in needs)
            {
                if (!await AccessibleAsync(setpriv, user, [(path, what, write)], ct))
                {
                    throw new DriverException("PermissionDenied",
                        $"{what} {path} is not {(write ? "readable and writable" : "readable")} by the QEMU user {user} (Qemu:RunAs); grant that user access to it (chmod, chown or an ACL){(write ? " or make the volume read-only" : "")}");
                }
            }
        }

        foreach (var name in new[] { dir.ConsoleLog, dir.File("qemu.log") })
        {
            if (!File.Exists(name))
            {
                await File.WriteAllBytesAsync(name, [], ct);
            }
        }

        // The VM's directory is root's (0755; a directory an earlier version handed to the user is taken back); the user
        // gets its own files in it, which it can write but not replace, and one directory for the sockets QEMU makes.
        var sockets = dir.File(UserDirectoryName);
        if (new DirectoryInfo(sockets) is { Exists: true, LinkTarget: null } existing)
        {
            existing.Delete(recursive: true);
        }
        else
        {
            VmDirectory.DeleteFile(sockets); // a link or a file there (planted before the directory was taken back)
        }

        System.IO.Directory.CreateDirectory(sockets, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Chown(0, 0, dir.Path);
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0b111_101_101);
        var owned = new List<string> { sockets, dir.ConsoleLog, dir.File("qemu.log") };
        owned.AddRange(prepared.Volumes.Where(v => v.IsScratch).Select(v => v.HostPath));
        Chown(user.Uid, user.Gid, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(owned));

        return setpriv;
    }

    /// <summary>
    /// Whether the QEMU user, with no supplementary groups, can read every path of <paramref name="needs"/> and write
    /// those marked so: one test(1) of them all, joined with -a.
    /// </summary>
    private static async Task<bool> AccessibleAsync(string setpriv, QemuUser user, IReadOnlyList<(string Path, string What, bool Write)> needs, CancellationToken ct)
    {
        List<string> args = [$"--reuid={user.Uid}", $"--regid={user.Gid}", "--clear-groups", "--", "test"];
        var firstOperand = args.Count;
        foreach (var (path, _, write) in needs)
        {
            if (args.Count > firstOperand)
            {
                args.Add("-a");
            }

            args.AddRange(["-r", path]);
            if (write)
            {
                args.AddRange(["-a", "-w", path]);
            }
        }

        return (await HostProcess.RunAsync(setpriv, args, TimeSpan.FromSeconds(10), ct)).Succeeded;
    }

    private static void Chown(int uid, int gid, params ReadOnlySpan<string> paths)
    {
        try
        {
            HostOwner.Set(uid, gid, paths);
        }
        catch (IOException ex)
        {
            throw new DriverException("HypervisorError", ex.Message);
        }
    }

    private async Task ControlAsync(VmRecord record, string command, CancellationToken ct)
    {
        if (await _qmp.StatusAsync(record.ControlSocket, ct) == "shutdown")
        {
            throw new DriverException("NotRunning", $"{command}: the guest of {record.Key} has powered off");
        }

        await _qmp.ExecuteAsync(record.ControlSocket, command, ct);
    }

    private async Task<AcceleratorChoice> ResolveAcceleratorAsync(string binary, CancellationToken ct)
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

            // The probe boots a kernel the node owns, never a caller's.
            var result = await _probe.RunAsync(binary, _options.KvmProbeKernel, _options.KvmProbeTimeout, ct);
            _probed = result.Usable ? new AcceleratorChoice("kvm", result.Reason) : new AcceleratorChoice("tcg", result.Reason);
            if (result.Usable)
            {
                LogKvmUsable(Log, result.Reason);
            }
            else
            {
                LogKvmUnusable(Log, result.Reason);
            }

            return _probed;
        }
        finally
        {
            _probeLock.Release();
        }
    }

    [GeneratedRegex(@"version (\d+\.\d+(?:\.\d+)?)")]
    private static partial Regex VersionPattern();
}

using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Hypercore.Bootstrap;
using Hypercore.Drivers.Vmm;
using Hypercore.HostAccess;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Firecracker;

/// <summary>
/// Runs each MicroVM in its own firecracker process (optionally through the jailer), started detached with
/// <c>--api-sock RuntimeDirectory/&lt;uid&gt;/api.sock</c> and configured over that socket: PUT /machine-config,
/// /boot-source, /drives/{id}, /network-interfaces/{id}, /mmds/config and /mmds, then PUT /actions InstanceStart.
/// Pause and resume are PATCH /vm; a graceful stop is PUT /actions SendCtrlAltDel (the guest reboots with reboot=k
/// and firecracker exits), then SIGKILL after the grace period. A 400 answer's fault_message becomes the message of
/// a <see cref="DriverException"/>. Everything else (directory, record, adoption, taps, prepared spec) is the
/// shared <see cref="VmmDriver"/> skeleton.
/// </summary>
public sealed partial class FirecrackerDriver(IOptions<FirecrackerOptions> options, TimeProvider time, ILogger<FirecrackerDriver> log, HostPathPolicy? hostPaths = null)
    : ApiVmmDriver<FirecrackerOptions>(options.Value, time, log, hostPaths)
{
    public const string ProviderName = "firecracker";

    public override string Name => ProviderName;

    public override DriverCapabilities Capabilities =>
        DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.MetadataService |
        DriverCapabilities.Tap | DriverCapabilities.Initrd | DriverCapabilities.BlockDevices | DriverCapabilities.Snapshot;

    protected override (int Uid, int Gid)? TapOwner => Options.Jailer.Enabled ? (Options.Jailer.Uid, Options.Jailer.Gid) : null;

    /// <summary>
    /// Full snapshot into <paramref name="directory"/> (files "vmstate" and "memory", see <see cref="SnapshotAsync"/>):
    /// pauses a running VM for the snapshot and resumes it afterwards.
    /// </summary>
    public async Task CreateSnapshotAsync(MicroVm vm, string directory, CancellationToken cancellationToken = default)
    {
        System.IO.Directory.CreateDirectory(directory);
        await SnapshotAsync(vm, directory, cancellationToken);
    }

    /// <summary>A firecracker 4xx/5xx answer as a DriverException carrying fault_message.</summary>
    internal static DriverException Fault(HttpMethod method, string path, ApiResponse response)
    {
        var message = response.Body.Trim();
        try
        {
            if (JsonNode.Parse(response.Body) is JsonObject o && o["fault_message"] is JsonValue v && v.TryGetValue<string>(out var fault))
            {
                message = fault;
            }
        }
        catch (JsonException)
        {
            // not JSON: keep the raw text
        }

        return new DriverException("HypervisorError", $"firecracker {method.Method} {path} failed ({(int)response.Status}): {message}");
    }

    protected override bool VmmSetsRootPartition => true;

    protected override string? CheckHost() =>
        Options.Jailer.Enabled && BinaryLocator.Resolve(Options.Jailer.BinaryPath) is (null, var tried)
            ? BinaryLocator.NotFoundMessage("jailer", tried)
            : base.CheckHost();

    protected override async Task<VmmLaunch> LaunchAsync(PreparedSpec prepared, string binary, VmDirectory dir, CancellationToken ct)
    {
        var uid = prepared.Vm.Uid;
        if (!Options.Jailer.Enabled)
        {
            var socket = dir.File(ApiSocketName);
            return new VmmLaunch
            {
                Executable = binary,
                Arguments = IsFirecrackerId(uid) ? ["--api-sock", socket, "--id", uid] : ["--api-sock", socket],
                ControlSocket = socket,
                ArgvMarker = socket,
                OutputLog = dir.ConsoleLog,
                Detail = "firecracker",
            };
        }

        var jailer = BinaryLocator.Resolve(Options.Jailer.BinaryPath).Path
            ?? throw new DriverException(Conditions.ReasonProviderUnavailable, "jailer binary not found: " + Options.Jailer.BinaryPath);
        var jail = await JailFiles.PrepareAsync(Options.Jailer, binary, prepared, ct);
        return new VmmLaunch
        {
            Executable = jailer,
            Arguments = JailerCommand.Arguments(Options.Jailer, binary, uid),
            ControlSocket = jail.Root + JailerCommand.SocketInJail,
            ArgvMarker = uid,
            OutputLog = dir.ConsoleLog,
            Detail = "firecracker (jailed)",
            Extra = new Dictionary<string, string> { ["jail"] = jail.Directory },
        };
    }

    protected override async Task BootAsync(PreparedSpec prepared, VmRecord record, VmDirectory dir, CancellationToken ct)
    {
        using var api = Api(record);
        await api.WaitUntilAnswersAsync("/", record.Pid, "firecracker", dir.ConsoleLog, Options.StartTimeout, Time, r => Fault(HttpMethod.Get, "/", r), ct);
        if (RestoreOf(prepared.Context) is { } restore)
        {
            await LoadSnapshotAsync(api, prepared, restore, ct); // snapshots: a fresh process loads instead of booting
            return;
        }

        var spec = prepared.Spec;
        var jailed = record.Extra.ContainsKey("jail");
        string InVm(string hostPath, string name) => jailed ? "/" + name : hostPath;

        await PutAsync(api, "/machine-config", new JsonObject { ["vcpu_count"] = spec.Vcpu, ["mem_size_mib"] = spec.MemoryInMb }, ct);
        var boot = new JsonObject
        {
            ["kernel_image_path"] = InVm(prepared.KernelPath!, "kernel"),
            ["boot_args"] = WithCloudInitSource(prepared),
        };
        if (prepared.InitrdPath is not null)
        {
            boot["initrd_path"] = InVm(prepared.InitrdPath, "initrd");
        }

        await PutAsync(api, "/boot-source", boot, ct);
        foreach (var volume in prepared.Volumes)
        {
            var drive = new JsonObject
            {
                ["drive_id"] = volume.Id,
                ["path_on_host"] = InVm(volume.HostPath, "drive-" + volume.Id),
                ["is_root_device"] = volume.IsRoot,
                ["is_read_only"] = volume.IsReadOnly,
            };
            if (volume.IsRoot && spec.RootVolume?.PartitionId is { } partition)
            {
                drive["partuuid"] = partition; // Firecracker then boots with root=PARTUUID=<id>
            }

            await PutAsync(api, "/drives/" + Uri.EscapeDataString(volume.Id), drive, ct);
        }

        foreach (var nic in prepared.Nics)
        {
            await PutAsync(api, "/network-interfaces/" + Uri.EscapeDataString(nic.DeviceId), new JsonObject
            {
                ["iface_id"] = nic.DeviceId,
                ["host_dev_name"] = nic.Tap,
                ["guest_mac"] = nic.Mac,
            }, ct);
        }

        if (prepared.CloudInit is { } cloudInit)
        {
            if (spec.Interfaces.Count > 0)
            {
                // The guest reaches MMDS (169.254.169.254) through the first interface.
                await PutAsync(api, "/mmds/config", new JsonObject
                {
                    ["version"] = Options.MmdsVersion,
                    ["network_interfaces"] = new JsonArray(spec.Interfaces[0].DeviceId),
                }, ct);
            }

            await PutAsync(api, "/mmds", MmdsContent(cloudInit), ct);
        }

        await PutAsync(api, "/actions", new JsonObject { ["action_type"] = "InstanceStart" }, ct);
    }

    // Guest bootstrap: flintlock's MMDS layout and kernel argument, so its guests' cloud-init finds the data.

    /// <summary>The kernel argument that points cloud-init's NoCloud source at MMDS (flintlock's).</summary>
    public const string CloudInitSourceArg = "ds=nocloud-net;s=http://169.254.169.254/latest/";

    /// <summary>MMDS content: {"latest": {"meta-data": ..., "user-data": ..., ...}}, values as plain text.</summary>
    public static JsonObject MmdsContent(IReadOnlyDictionary<string, string> cloudInit)
    {
        var latest = new JsonObject();
        foreach (var (key, value) in cloudInit)
        {
            latest[key] = value;
        }

        return new JsonObject { ["latest"] = latest };
    }

    /// <summary>Linux's COMMAND_LINE_SIZE on x86 (2048, the terminating NUL included).</summary>
    private const int MaxCmdline = 2047;

    /// <summary>
    /// The kernel command line plus <see cref="CloudInitSourceArg"/> when there is cloud-init data and the spec names
    /// no "ds"; and the network-config as "network-config=&lt;base64&gt;" (as flintlock did) when it fits: cloud-init
    /// reads that in its local stage, before the network it needs to reach MMDS is up.
    /// </summary>
    public static string WithCloudInitSource(PreparedSpec prepared)
    {
        var cmdline = prepared.KernelCmdline;
        if (prepared.CloudInit is not { } files)
        {
            return cmdline;
        }

        if (!prepared.Spec.Kernel.Cmdline.ContainsKey("ds"))
        {
            cmdline = $"{cmdline} {CloudInitSourceArg}".Trim();
        }

        if (files.TryGetValue(GuestMetadataRules.NetworkConfig, out var network) && !prepared.Spec.Kernel.Cmdline.ContainsKey("network-config"))
        {
            var arg = "network-config=" + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(network));
            if (cmdline.Length + 1 + arg.Length <= MaxCmdline)
            {
                cmdline = $"{cmdline} {arg}";
            }
        }

        return cmdline;
    }

    protected override async Task<VmmState> QueryAsync(VmRecord record, CancellationToken ct)
    {
        using var api = Api(record);
        return new VmmState(await StateAsync(api, ct));
    }

    protected override async Task PauseCoreAsync(VmRecord record, CancellationToken ct)
    {
        using var api = Api(record);
        await PutVmStateAsync(api, "Paused", ct);
    }

    protected override async Task ResumeCoreAsync(VmRecord record, CancellationToken ct)
    {
        using var api = Api(record);
        await PutVmStateAsync(api, "Resumed", ct);
    }

    /// <summary>Ctrl-Alt-Del (resuming a paused guest first): with reboot=k the guest's reboot ends firecracker.</summary>
    protected override async Task<bool> RequestPowerOffAsync(VmRecord record, CancellationToken ct)
    {
        using var api = Api(record);
        var state = await StateAsync(api, ct);
        if (state == LiveState.Created)
        {
            return false; // nothing booted: nothing to power off
        }

        if (state == LiveState.Paused)
        {
            await PutVmStateAsync(api, "Resumed", ct);
        }

        await PutAsync(api, "/actions", new JsonObject { ["action_type"] = "SendCtrlAltDel" }, ct);
        return true;
    }

    /// <summary>Firecracker has no "exit" call: after the grace period it is killed.</summary>
    protected override TimeSpan ExitTimeout => TimeSpan.Zero;

    protected override async Task AfterCleanupAsync(MicroVm vm, VmRecord? record, CancellationToken ct)
    {
        var jailDir = record?.Extra.GetValueOrDefault("jail");
        if (Options.Jailer.Enabled || jailDir is not null)
        {
            var binary = BinaryLocator.Resolve(Options.BinaryPath).Path ?? Options.BinaryPath;
            jailDir ??= JailerCommand.JailDirectory(Options.Jailer, binary, vm.Uid);
            await JailFiles.RemoveAsync(jailDir, ct);
            RemoveJailCgroup(vm.Uid);
        }
    }

    private static async Task PutVmStateAsync(UnixSocketApi api, string state, CancellationToken ct) =>
        await api.ExpectSuccessAsync(HttpMethod.Patch, "/vm", new JsonObject { ["state"] = state }, r => Fault(HttpMethod.Patch, "/vm", r), ct);

    private static async Task PutAsync(UnixSocketApi api, string path, JsonNode body, CancellationToken ct) =>
        await api.ExpectSuccessAsync(HttpMethod.Put, path, body, r => Fault(HttpMethod.Put, path, r), ct);

    private static async Task<LiveState> StateAsync(UnixSocketApi api, CancellationToken ct)
    {
        var response = await api.ExpectSuccessAsync(HttpMethod.Get, "/", null, r => Fault(HttpMethod.Get, "/", r), ct);
        return response.Json?["state"]?.GetValue<string>() switch
        {
            "Not started" => LiveState.Created,
            "Running" => LiveState.Running,
            "Paused" => LiveState.Paused,
            var other => throw new DriverException("HypervisorError", $"firecracker reported unknown state \"{other}\""),
        };
    }

    private void RemoveJailCgroup(string uid)
    {
        var parent = Options.Jailer.ParentCgroup.Length > 0 ? Options.Jailer.ParentCgroup : "firecracker";
        var dir = Path.Combine("/sys/fs/cgroup", parent, uid);
        try
        {
            if (System.IO.Directory.Exists(dir))
            {
                System.IO.Directory.Delete(dir); // cgroup dirs are removed with rmdir, never recursively
            }
        }
        catch (IOException ex)
        {
            LogCgroup(Log, uid, dir, ex.Message);
        }
    }

    [GeneratedRegex("^[a-zA-Z0-9-]{1,64}\\z")]
    private static partial Regex FirecrackerId();

    private static bool IsFirecrackerId(string uid) => FirecrackerId().IsMatch(uid);

    [LoggerMessage(3303, LogLevel.Warning, "{Uid}: could not remove cgroup {Dir}: {Message}")]
    private static partial void LogCgroup(ILogger log, string uid, string dir, string message);
}

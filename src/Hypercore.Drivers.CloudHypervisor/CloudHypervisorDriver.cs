using System.Text.Json;
using System.Text.Json.Nodes;
using Hypercore.Drivers.Vmm;
using Hypercore.HostAccess;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.CloudHypervisor;

/// <summary>
/// Runs each MicroVM in its own cloud-hypervisor process, started detached with
/// <c>--api-socket path=RuntimeDirectory/&lt;uid&gt;/api.sock</c>, then PUT /api/v1/vm.create (VmConfig) and
/// vm.boot. Live state is GET vm.info (404 until vm.create); pause and resume are vm.pause and vm.resume; a
/// graceful stop presses the ACPI power button (vm.power-button) and waits, then vm.shutdown and vmm.shutdown, then
/// SIGKILL. Cloud Hypervisor's error bodies (a JSON array of messages, outermost first) become the message of a
/// <see cref="DriverException"/>. Everything else is the shared <see cref="VmmDriver"/> skeleton.
/// </summary>
public sealed partial class CloudHypervisorDriver(IOptions<CloudHypervisorOptions> options, TimeProvider time, ILogger<CloudHypervisorDriver> log, HostPathPolicy? hostPaths = null)
    : ApiVmmDriver<CloudHypervisorOptions>(options.Value, time, log, hostPaths)
{
    public const string ProviderName = "cloud-hypervisor";

    private const string ApiPrefix = "/api/v1/";

    public override string Name => ProviderName;

    public override DriverCapabilities Capabilities =>
        DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.Tap |
        DriverCapabilities.Initrd | DriverCapabilities.BlockDevices | DriverCapabilities.Snapshot |
        DriverCapabilities.MetadataService; // guest bootstrap: a cloud-init seed disk

    protected override TimeSpan ExitTimeout => Options.VmmExitTimeout;

    /// <summary>Guest bootstrap: spec.metadata reaches the guest on a NoCloud seed disk.</summary>
    protected override bool UsesSeedDisk => true;

    /// <summary>Snapshot into <paramref name="directory"/> (see <see cref="SnapshotAsync"/>).</summary>
    public async Task CreateSnapshotAsync(MicroVm vm, string directory, CancellationToken cancellationToken = default)
    {
        System.IO.Directory.CreateDirectory(directory);
        await SnapshotAsync(vm, directory, cancellationToken);
    }

    /// <summary>An error answer as a DriverException: the JSON array of messages joined, or the raw text.</summary>
    internal static DriverException Error(HttpMethod method, string endpoint, ApiResponse response)
    {
        var message = response.Body.Trim();
        try
        {
            if (JsonNode.Parse(response.Body) is JsonArray parts && parts.Count > 0)
            {
                message = string.Join(": ", parts.Select(p => p?.ToString()).Where(p => !string.IsNullOrEmpty(p)));
            }
        }
        catch (JsonException)
        {
            // not JSON: keep the raw text
        }

        if (message.Length == 0)
        {
            message = response.Status.ToString();
        }

        return new DriverException("HypervisorError", $"cloud-hypervisor {method.Method} {endpoint} failed ({(int)response.Status}): {message}");
    }

    protected override Task<VmmLaunch> LaunchAsync(PreparedSpec prepared, string binary, VmDirectory dir, CancellationToken ct)
    {
        var socket = dir.File(ApiSocketName);
        return Task.FromResult(new VmmLaunch
        {
            Executable = binary,
            Arguments = ["--api-socket", $"path={socket}"],
            ControlSocket = socket,
            ArgvMarker = socket,
            Detail = "cloud-hypervisor",
        });
    }

    protected override async Task BootAsync(PreparedSpec prepared, VmRecord record, VmDirectory dir, CancellationToken ct)
    {
        using var api = Api(record);
        await api.WaitUntilAnswersAsync(ApiPrefix + "vmm.ping", record.Pid, "cloud-hypervisor", dir.File("vmm.log"), Options.StartTimeout, Time,
            r => Error(HttpMethod.Get, "vmm.ping", r), ct);
        if (RestoreOf(prepared.Context) is { } restore)
        {
            await RestoreAsync(api, prepared, restore, ct); // snapshots: restore instead of create + boot
            return;
        }

        await PutAsync(api, "vm.create", VmConfig(prepared, dir), ct);
        await PutAsync(api, "vm.boot", null, ct);
    }

    protected override async Task<VmmState> QueryAsync(VmRecord record, CancellationToken ct)
    {
        using var api = Api(record);
        var state = await StateAsync(api, ct);
        return state == LiveState.Exited ? new VmmState(state, ExitKind.GuestShutdown, "the guest shut down") : new VmmState(state);
    }

    protected override async Task PauseCoreAsync(VmRecord record, CancellationToken ct)
    {
        using var api = Api(record);
        await PutAsync(api, "vm.pause", null, ct);
    }

    protected override async Task ResumeCoreAsync(VmRecord record, CancellationToken ct)
    {
        using var api = Api(record);
        await PutAsync(api, "vm.resume", null, ct);
    }

    protected override async Task<bool> RequestPowerOffAsync(VmRecord record, CancellationToken ct)
    {
        using var api = Api(record);
        var state = await StateAsync(api, ct);
        if (state is LiveState.Created or LiveState.Exited)
        {
            return false;
        }

        if (state == LiveState.Paused)
        {
            await PutAsync(api, "vm.resume", null, ct);
        }

        await PutAsync(api, "vm.power-button", null, ct);
        return true;
    }

    protected override async Task<bool> IsGuestOffAsync(VmRecord record, CancellationToken ct)
    {
        using var api = Api(record);
        return await StateAsync(api, ct) == LiveState.Exited;
    }

    /// <summary>vm.shutdown then vmm.shutdown; each may fail on a VMM already on its way out.</summary>
    protected override async Task ShutdownAsync(VmRecord record, CancellationToken ct)
    {
        using var api = Api(record);
        try
        {
            await PutAsync(api, "vm.shutdown", null, ct);
        }
        catch (Exception ex) when (IsTransient(ex))
        {
            // no VM inside, or already shut down: vmm.shutdown still ends the process
        }

        await PutAsync(api, "vmm.shutdown", null, ct);
    }

    protected override async Task BeforeCleanupAsync(VmRecord record, CancellationToken ct)
    {
        using var api = Api(record);
        await PutAsync(api, "vm.delete", null, ct);
    }

    private JsonObject VmConfig(PreparedSpec prepared, VmDirectory dir)
    {
        var spec = prepared.Spec;
        var payload = new JsonObject { ["kernel"] = prepared.KernelPath, ["cmdline"] = prepared.KernelCmdline };
        if (prepared.InitrdPath is not null)
        {
            payload["initramfs"] = prepared.InitrdPath;
        }

        var config = new JsonObject
        {
            ["payload"] = payload,
            ["cpus"] = new JsonObject { ["boot_vcpus"] = spec.Vcpu, ["max_vcpus"] = spec.Vcpu },
            ["memory"] = new JsonObject { ["size"] = (long)spec.MemoryInMb * 1024 * 1024 },
            ["serial"] = new JsonObject { ["mode"] = "File", ["file"] = dir.ConsoleLog },
            ["console"] = new JsonObject { ["mode"] = "Off" },
        };
        if (prepared.Volumes.Count > 0)
        {
            config["disks"] = new JsonArray([.. prepared.Volumes.Select(v => (JsonNode)new JsonObject
            {
                ["path"] = v.HostPath,
                ["readonly"] = v.IsReadOnly,
                ["id"] = v.Id,
            })]);
        }

        if (prepared.Nics.Count > 0)
        {
            config["net"] = new JsonArray([.. prepared.Nics.Select(nic => (JsonNode)new JsonObject
            {
                ["tap"] = nic.Tap,
                ["mac"] = nic.Mac,
                ["id"] = nic.DeviceId,
            })]);
        }

        return config;
    }

    private static async Task PutAsync(UnixSocketApi api, string endpoint, JsonNode? body, CancellationToken ct) =>
        await api.ExpectSuccessAsync(HttpMethod.Put, ApiPrefix + endpoint, body, r => Error(HttpMethod.Put, endpoint, r), ct);

    private static async Task<LiveState> StateAsync(UnixSocketApi api, CancellationToken ct)
    {
        var response = await api.GetAsync(ApiPrefix + "vm.info", ct);
        if (response.Status == System.Net.HttpStatusCode.NotFound)
        {
            return LiveState.Created; // the VMM runs but no VM was created in it
        }

        if (!response.IsSuccess)
        {
            throw Error(HttpMethod.Get, "vm.info", response);
        }

        return response.Json?["state"]?.GetValue<string>() switch
        {
            "Created" => LiveState.Created,
            "Running" => LiveState.Running,
            "Paused" or "BreakPoint" => LiveState.Paused,
            "Shutdown" => LiveState.Exited,
            var other => throw new DriverException("HypervisorError", $"cloud-hypervisor reported unknown state \"{other}\""),
        };
    }
}

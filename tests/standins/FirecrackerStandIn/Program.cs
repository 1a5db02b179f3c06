using System.Text.Json;
using System.Text.Json.Nodes;
using Hypercore.StandIns.Firecracker;

// A stand-in for firecracker, for tests only. It follows the public swagger (src/firecracker/swagger/firecracker.yaml):
// 204 on success, 400 {"fault_message": ...} on bad input, pre-boot-only resources refused after InstanceStart,
// PATCH /vm refused before it, GET / reporting "Not started" | "Running" | "Paused". Its stdout plays the guest's
// serial console, and SendCtrlAltDel makes it exit shortly after, as a guest booted with reboot=k does.
if (args.Contains("--version"))
{
    Console.WriteLine("Firecracker v1.10.1 (hypercore test stand-in)");
    return 0;
}

string? Flag(string name)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

var socket = Flag("--api-sock") ?? "/run/firecracker.socket";
if (File.Exists(socket))
{
    Console.Error.WriteLine($"Error: Failed to open the API socket at: {socket}. Check that it is not already used.");
    return 1;
}

var model = new FirecrackerModel(Flag("--id") ?? "anonymous-instance");
var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(socket));
var app = builder.Build();
app.Run(model.HandleAsync);
Console.WriteLine($"Running Firecracker v1.10.1 (stand-in), API socket {socket}");
await app.RunAsync();
return 0;

namespace Hypercore.StandIns.Firecracker
{
    internal sealed class FirecrackerModel(string id)
    {
        private const string PostBoot = "The requested operation is not supported after starting the microVM.";
        private const string PreBoot = "The requested operation is not supported before starting the microVM.";
        private const string IgnoreCtrlAltDel = "hypercore.standin.ignore_ctrlaltdel";

        /// <summary>The "guest" panics right after boot: with panic=1 reboot=k it reboots, and firecracker exits.</summary>
        private const string Panic = "hypercore.standin.panic";

        private readonly Lock _lock = new();
        private readonly Dictionary<string, JsonObject> _drives = [];
        private readonly Dictionary<string, JsonObject> _nics = [];
        private JsonObject _machine = new() { ["vcpu_count"] = 1, ["mem_size_mib"] = 128, ["smt"] = false };
        private JsonObject? _bootSource;
        private JsonObject? _mmdsConfig;
        private JsonNode? _mmds;
        private bool _started;
        private bool _paused;
        private bool _powerOffPending;

        public async Task HandleAsync(HttpContext ctx)
        {
            var method = ctx.Request.Method;
            var path = ctx.Request.Path.Value ?? "/";
            var text = await new StreamReader(ctx.Request.Body).ReadToEndAsync();
            JsonNode? body = null;
            if (text.Length > 0)
            {
                try
                {
                    body = JsonNode.Parse(text);
                }
                catch (JsonException ex)
                {
                    await WriteAsync(ctx, 400, Fault("An error occurred when deserializing the json body of a request: " + ex.Message));
                    return;
                }
            }

            (int Status, JsonNode? Body) result;
            lock (_lock)
            {
                result = Handle(method, path, body);
            }

            await WriteAsync(ctx, result.Status, result.Body);
        }

        private static async Task WriteAsync(HttpContext ctx, int status, JsonNode? body)
        {
            ctx.Response.StatusCode = status;
            if (body is not null)
            {
                ctx.Response.ContentType = "application/json";
                await ctx.Response.WriteAsync(body.ToJsonString());
            }
        }

        private static JsonObject Fault(string message) => new() { ["fault_message"] = message };

        private static (int, JsonNode?) BadRequest(string message) => (400, Fault(message));

        private static (int, JsonNode?) NoContent => (204, null);

        private string State => !_started ? "Not started" : _paused ? "Paused" : "Running";

        private (int, JsonNode?) Handle(string method, string path, JsonNode? body)
        {
            var segments = path.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries);
            var resource = segments.Length == 0 ? "" : segments[0];
            var sub = segments.Length > 1 ? Uri.UnescapeDataString(segments[1]) : null;

            switch (method, resource, sub)
            {
                case ("GET", "", null):
                    return (200, new JsonObject { ["id"] = id, ["state"] = State, ["vmm_version"] = "1.10.1", ["app_name"] = "Firecracker" });
                case ("GET", "version", null):
                    return (200, new JsonObject { ["firecracker_version"] = "1.10.1" });
                case ("GET", "machine-config", null):
                    return (200, _machine.DeepClone());
                case ("GET", "vm", "config"):
                    return (200, FullConfig());
                case ("PUT", "machine-config", null):
                    return _started ? BadRequest(PostBoot) : PutMachineConfig(body);
                case ("PUT", "boot-source", null):
                    return _started ? BadRequest(PostBoot) : PutBootSource(body);
                case ("PUT", "drives", not null):
                    return _started ? BadRequest(PostBoot) : PutDrive(sub, body);
                case ("PUT", "network-interfaces", not null):
                    return _started ? BadRequest(PostBoot) : PutNetworkInterface(sub, body);
                case ("PUT", "mmds", "config"):
                    return _started ? BadRequest(PostBoot) : PutMmdsConfig(body);
                case ("PUT", "mmds", null):
                    if (body is not JsonObject)
                    {
                        return BadRequest("The MMDS data store contents must be a JSON object.");
                    }

                    _mmds = body.DeepClone();
                    return NoContent;
                case ("GET", "mmds", null):
                    return _mmds is null ? (404, Fault("The MMDS data store content can not be found.")) : (200, _mmds.DeepClone());
                case ("PUT", "actions", null):
                    return Action(body?["action_type"]?.GetValue<string>());
                case ("PATCH", "vm", null):
                    return PatchVm(body?["state"]?.GetValue<string>());
                case ("PUT", "snapshot", "create"):
                    return CreateSnapshot(body);
                case ("PUT", "snapshot", "load"):
                    return LoadSnapshot(body);
                case ("PUT", "logger" or "metrics", null):
                    return NoContent;
                default:
                    return BadRequest($"Invalid request method and/or path: {method} {path}.");
            }
        }

        private (int, JsonNode?) PutMachineConfig(JsonNode? body)
        {
            if (body?["vcpu_count"] is not JsonValue vcpu || !vcpu.TryGetValue<int>(out var n) ||
                body["mem_size_mib"] is not JsonValue mem || !mem.TryGetValue<int>(out var mib))
            {
                return BadRequest("An error occurred when deserializing the json body of a request: missing field `vcpu_count` or `mem_size_mib`.");
            }

            if (n is < 1 or > 32)
            {
                return BadRequest("The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled.");
            }

            if (mib < 1)
            {
                return BadRequest("The memory size (MiB) is invalid.");
            }

            _machine = new JsonObject { ["vcpu_count"] = n, ["mem_size_mib"] = mib, ["smt"] = false };
            return NoContent;
        }

        private (int, JsonNode?) PutBootSource(JsonNode? body)
        {
            var kernel = body?["kernel_image_path"]?.GetValue<string>();
            if (kernel is null)
            {
                return BadRequest("An error occurred when deserializing the json body of a request: missing field `kernel_image_path`.");
            }

            // Like firecracker, open the files now: a bad path fails this call, not the boot.
            if (!File.Exists(kernel))
            {
                return BadRequest("The kernel file cannot be opened: No such file or directory (os error 2)");
            }

            var initrd = body!["initrd_path"]?.GetValue<string>();
            if (initrd is not null && !File.Exists(initrd))
            {
                return BadRequest("The initrd file cannot be opened due to invalid path or invalid permissions. No such file or directory (os error 2)");
            }

            _bootSource = (JsonObject)body.DeepClone();
            return NoContent;
        }

        private (int, JsonNode?) PutDrive(string driveId, JsonNode? body)
        {
            var bodyId = body?["drive_id"]?.GetValue<string>();
            if (bodyId != driveId)
            {
                return BadRequest($"The id from the path [{driveId}] does not match the id from the body [{bodyId}]!");
            }

            if (body!["is_root_device"] is not JsonValue root || !root.TryGetValue<bool>(out var isRoot))
            {
                return BadRequest("An error occurred when deserializing the json body of a request: missing field `is_root_device`.");
            }

            // Firecracker's Option<String>: the root drive's partition, which it turns into root=PARTUUID=<id>.
            if (body["partuuid"] is { } partuuid && (partuuid is not JsonValue v || !v.TryGetValue<string>(out _)))
            {
                return BadRequest("An error occurred when deserializing the json body of a request: invalid type for `partuuid`, expected a string.");
            }

            var path = body["path_on_host"]?.GetValue<string>() ?? "";
            if (!File.Exists(path))
            {
                return BadRequest($"Unable to create the block device: BackingFile(Os {{ code: 2, kind: NotFound, message: \"No such file or directory\" }}, \"{path}\")");
            }

            if (isRoot && _drives.Any(d => d.Key != driveId && d.Value["is_root_device"]!.GetValue<bool>()))
            {
                return BadRequest("A root block device already exists!");
            }

            _drives[driveId] = (JsonObject)body.DeepClone();
            return NoContent;
        }

        private (int, JsonNode?) PutNetworkInterface(string ifaceId, JsonNode? body)
        {
            var bodyId = body?["iface_id"]?.GetValue<string>();
            if (bodyId != ifaceId)
            {
                return BadRequest($"The id from the path [{ifaceId}] does not match the id from the body [{bodyId}]!");
            }

            var tap = body!["host_dev_name"]?.GetValue<string>();
            if (string.IsNullOrEmpty(tap))
            {
                return BadRequest("An error occurred when deserializing the json body of a request: missing field `host_dev_name`.");
            }

            if (tap.Length > 15)
            {
                return BadRequest($"Could not create the network device: Open tap device failed: Invalid interface name: {tap}");
            }

            if (_nics.Any(n => n.Key != ifaceId && n.Value["host_dev_name"]!.GetValue<string>() == tap))
            {
                return BadRequest($"Could not create the network device: The host device name {tap} is already in use.");
            }

            _nics[ifaceId] = (JsonObject)body.DeepClone();
            return NoContent;
        }

        private (int, JsonNode?) PutMmdsConfig(JsonNode? body)
        {
            if (body?["network_interfaces"] is not JsonArray ifaces)
            {
                return BadRequest("An error occurred when deserializing the json body of a request: missing field `network_interfaces`.");
            }

            if (ifaces.Count == 0)
            {
                return BadRequest("The list of network interface IDs that allow forwarding MMDS requests is empty.");
            }

            if (ifaces.Any(i => !_nics.ContainsKey(i?.GetValue<string>() ?? "")))
            {
                return BadRequest("The list of network interface IDs provided contains at least one ID that does not correspond to any existing network interface.");
            }

            if (body["version"]?.GetValue<string>() is { } v && v is not ("V1" or "V2"))
            {
                return BadRequest($"An error occurred when deserializing the json body of a request: unknown variant `{v}`, expected `V1` or `V2`.");
            }

            _mmdsConfig = (JsonObject)body.DeepClone();
            return NoContent;
        }

        private (int, JsonNode?) Action(string? action)
        {
            switch (action)
            {
                case "InstanceStart":
                    if (_started)
                    {
                        return BadRequest(PostBoot);
                    }

                    if (_bootSource is null)
                    {
                        return BadRequest("Cannot start microvm without kernel configuration.");
                    }

                    _started = true;
                    var cmdline = _bootSource["boot_args"]?.GetValue<string>() ?? "";
                    if (_drives.Values.FirstOrDefault(d => d["is_root_device"]!.GetValue<bool>() && d["partuuid"] is not null) is { } rootDrive)
                    {
                        cmdline += $" root=PARTUUID={rootDrive["partuuid"]!.GetValue<string>()}"; // as Firecracker appends it
                    }

                    Console.WriteLine("[    0.000000] Linux version 6.1.0 (hypercore firecracker stand-in)");
                    Console.WriteLine($"[    0.000000] Command line: {cmdline}");
                    Console.WriteLine($"[    0.010000] Memory: {_machine["mem_size_mib"]}MiB, {_machine["vcpu_count"]} vCPU(s), {_drives.Count} drive(s), {_nics.Count} nic(s)");
                    Console.WriteLine("HYPERCORE-GUEST-READY");
                    if (cmdline.Contains(Panic, StringComparison.Ordinal))
                    {
                        PanicSoon();
                    }

                    return NoContent;
                case "SendCtrlAltDel":
                    if (!_started)
                    {
                        return BadRequest(PreBoot);
                    }

                    if (!(_bootSource?["boot_args"]?.GetValue<string>() ?? "").Contains(IgnoreCtrlAltDel, StringComparison.Ordinal))
                    {
                        _powerOffPending = true;
                        if (!_paused)
                        {
                            PowerOffSoon();
                        }
                    }

                    return NoContent;
                case "FlushMetrics":
                    return BadRequest("The metrics system is not initialized.");
                default:
                    return BadRequest($"An error occurred when deserializing the json body of a request: unknown variant `{action}`.");
            }
        }

        private (int, JsonNode?) PatchVm(string? state)
        {
            if (!_started)
            {
                return BadRequest(PreBoot);
            }

            switch (state)
            {
                case "Paused":
                    _paused = true;
                    return NoContent;
                case "Resumed":
                    _paused = false;
                    if (_powerOffPending)
                    {
                        PowerOffSoon();
                    }

                    return NoContent;
                default:
                    return BadRequest($"An error occurred when deserializing the json body of a request: unknown variant `{state}`, expected `Paused` or `Resumed`.");
            }
        }

        private (int, JsonNode?) CreateSnapshot(JsonNode? body)
        {
            if (!_started)
            {
                return BadRequest(PreBoot);
            }

            if (!_paused)
            {
                return BadRequest("Cannot create a snapshot of a microVM that is not paused.");
            }

            var statePath = body?["snapshot_path"]?.GetValue<string>();
            var memPath = body?["mem_file_path"]?.GetValue<string>();
            if (statePath is null || memPath is null)
            {
                return BadRequest("An error occurred when deserializing the json body of a request: missing field `snapshot_path` or `mem_file_path`.");
            }

            try
            {
                File.WriteAllText(statePath, FullConfig().ToJsonString());
                File.WriteAllText(memPath, $"guest memory of {_machine["mem_size_mib"]} MiB (stand-in)\n");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return BadRequest("Cannot save the microVM state: " + ex.Message);
            }

            return NoContent;
        }

        /// <summary>
        /// PUT /snapshot/load (swagger SnapshotLoadParams): only on a fresh process; snapshot_path required; exactly one
        /// of mem_file_path (deprecated) and mem_backend {backend_type File|Uffd, backend_path}; resume_vm;
        /// network_overrides [{iface_id, host_dev_name}]. The state file is what this stand-in's snapshot/create wrote
        /// (the full config); drives are reopened at the paths saved in it, as firecracker does.
        /// </summary>
        private (int, JsonNode?) LoadSnapshot(JsonNode? body)
        {
            if (_started || _bootSource is not null || _drives.Count > 0 || _nics.Count > 0)
            {
                return BadRequest("Loading a microVM snapshot not allowed after configuring boot-specific resources.");
            }

            var statePath = body?["snapshot_path"]?.GetValue<string>();
            if (statePath is null)
            {
                return BadRequest("An error occurred when deserializing the json body of a request: missing field `snapshot_path`.");
            }

            var memFile = body!["mem_file_path"]?.GetValue<string>();
            var backend = body["mem_backend"];
            if ((memFile is null) == (backend is null))
            {
                return BadRequest("An error occurred when deserializing the json body of a request: either `mem_backend` or `mem_file_path` must be present at a time.");
            }

            if (backend is not null)
            {
                if (backend["backend_type"]?.GetValue<string>() is not ("File" or "Uffd") || backend["backend_path"]?.GetValue<string>() is not { } backendPath)
                {
                    return BadRequest("An error occurred when deserializing the json body of a request: missing field `backend_type` or `backend_path`.");
                }

                memFile = backendPath;
            }

            JsonObject? state;
            try
            {
                state = JsonNode.Parse(File.ReadAllText(statePath)) as JsonObject;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
            {
                return BadRequest($"Load snapshot error: Failed to restore from snapshot: Failed to get snapshot state from file: {ex.Message}");
            }

            if (state?["machine-config"] is not JsonObject machine)
            {
                return BadRequest("Load snapshot error: Failed to restore from snapshot: Failed to get snapshot state from file: Failed to load snapshot state from file: Snapshot file is smaller than CRC length.");
            }

            if (!File.Exists(memFile))
            {
                return BadRequest($"Load snapshot error: Failed to restore from snapshot: Failed to load guest memory: Cannot create mmap region: No such file or directory (os error 2)");
            }

            foreach (var drive in state["drives"]?.AsArray() ?? [])
            {
                if (drive?["path_on_host"]?.GetValue<string>() is { } drivePath && !File.Exists(drivePath))
                {
                    return BadRequest($"Load snapshot error: Failed to restore from snapshot: Failed to build microVM from snapshot: Cannot restore devices: Block(BackingFile(Os {{ code: 2, kind: NotFound, message: \"No such file or directory\" }}, \"{drivePath}\"))");
                }
            }

            var overrides = (body["network_overrides"]?.AsArray() ?? []).OfType<JsonObject>()
                .ToDictionary(o => o["iface_id"]?.GetValue<string>() ?? "", o => o["host_dev_name"]?.GetValue<string>() ?? "");
            _machine = (JsonObject)machine.DeepClone();
            _bootSource = state["boot-source"]?.DeepClone() as JsonObject;
            foreach (var drive in (state["drives"]?.AsArray() ?? []).OfType<JsonObject>())
            {
                _drives[drive["drive_id"]!.GetValue<string>()] = (JsonObject)drive.DeepClone();
            }

            foreach (var nic in (state["network-interfaces"]?.AsArray() ?? []).OfType<JsonObject>())
            {
                var copy = (JsonObject)nic.DeepClone();
                var iface = copy["iface_id"]!.GetValue<string>();
                if (overrides.TryGetValue(iface, out var tap))
                {
                    copy["host_dev_name"] = tap;
                }

                _nics[iface] = copy;
            }

            _mmdsConfig = state["mmds-config"]?.DeepClone() as JsonObject;
            _started = true;
            _paused = body["resume_vm"]?.GetValue<bool>() != true;
            return NoContent;
        }

        private JsonObject FullConfig() => new()
        {
            ["boot-source"] = _bootSource?.DeepClone(),
            ["machine-config"] = _machine.DeepClone(),
            ["drives"] = new JsonArray([.. _drives.Values.Select(d => (JsonNode)d.DeepClone())]),
            ["network-interfaces"] = new JsonArray([.. _nics.Values.Select(n => (JsonNode)n.DeepClone())]),
            ["mmds-config"] = _mmdsConfig?.DeepClone(),
        };

        private static void PanicSoon() => _ = Task.Run(async () =>
        {
            await Task.Delay(300);
            Console.WriteLine("[    1.000000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100");
            Console.WriteLine("[    1.000001] Rebooting in 1 seconds..");
            Environment.Exit(0);
        });

        private static void PowerOffSoon() => _ = Task.Run(async () =>
        {
            // The guest takes a moment to run its shutdown, then firecracker exits (reboot=k).
            await Task.Delay(300);
            Console.WriteLine("reboot: Restarting system");
            Environment.Exit(0);
        });
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using Hypercore.StandIns.CloudHypervisor;

// A stand-in for cloud-hypervisor, for tests only. It follows the public OpenAPI
// (vmm/src/api/openapi/cloud-hypervisor.yaml) and the server's error shape (a JSON array of messages, outermost
// first; 404 when the VM is not created, 500 for other failures): vm.info is 404 before vm.create, vm.boot before
// vm.create is 404, pause before boot is refused, and the process exits on vmm.shutdown and when the guest powers
// off (vm.power-button), as cloud-hypervisor does. The serial console goes where VmConfig.serial says.
if (args.Contains("--version") || args.Contains("-V"))
{
    Console.WriteLine("cloud-hypervisor v41.0.0 (hypercore test stand-in)");
    return 0;
}

var i = Array.IndexOf(args, "--api-socket");
if (i < 0 || i + 1 >= args.Length)
{
    Console.Error.WriteLine("Error: --api-socket is required by this stand-in");
    return 1;
}

// "--api-socket path=/x/api.sock" or the older "--api-socket /x/api.sock".
var value = args[i + 1];
var socket = value.Split(',').Select(p => p.Trim()).Where(p => p.StartsWith("path=", StringComparison.Ordinal))
    .Select(p => p[5..]).FirstOrDefault() ?? value;

// Like cloud-hypervisor since v39: a lock file beside the socket, then a stale socket is replaced.
var lockFile = new FileStream(socket + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
File.Delete(socket);

var model = new CloudHypervisorModel();
var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(socket));
var app = builder.Build();
app.Run(model.HandleAsync);
Console.WriteLine($"cloud-hypervisor v41.0.0 (stand-in): API socket {socket}");
await app.RunAsync();
lockFile.Dispose();
return 0;

namespace Hypercore.StandIns.CloudHypervisor
{
    internal sealed class CloudHypervisorModel
    {
        private const string Root = "/api/v1/";
        private const string IgnorePowerButton = "hypercore.standin.ignore_acpi";

        private readonly Lock _lock = new();
        private JsonObject? _config;
        private string? _state; // null: no VM created

        public async Task HandleAsync(HttpContext ctx)
        {
            var method = ctx.Request.Method;
            var path = ctx.Request.Path.Value ?? "/";
            var text = await new StreamReader(ctx.Request.Body).ReadToEndAsync();
            (int Status, JsonNode? Body, Action? After) result;
            if (!path.StartsWith(Root, StringComparison.Ordinal))
            {
                result = (404, Errors("Not Found"), null);
            }
            else
            {
                lock (_lock)
                {
                    result = Handle(method, path[Root.Length..], text);
                }
            }

            ctx.Response.StatusCode = result.Status;
            if (result.Body is not null)
            {
                ctx.Response.ContentType = "application/json";
                await ctx.Response.WriteAsync(result.Body.ToJsonString());
            }

            if (result.After is { } after)
            {
                ctx.Response.OnCompleted(() =>
                {
                    after();
                    return Task.CompletedTask;
                });
            }
        }

        private static JsonArray Errors(params string[] messages) => new([.. messages.Select(m => (JsonNode)JsonValue.Create(m))]);

        private static (int, JsonNode?, Action?) Ok(JsonNode? body = null) => (body is null ? 204 : 200, body, null);

        private static (int, JsonNode?, Action?) NotCreated(string what) => (404, Errors("Error from API", what, "VM is not created"), null);

        private (int, JsonNode?, Action?) Handle(string method, string endpoint, string text)
        {
            switch (method, endpoint)
            {
                case ("GET", "vmm.ping"):
                    return Ok(new JsonObject
                    {
                        ["build_version"] = "v41.0.0-standin",
                        ["version"] = "41.0.0",
                        ["pid"] = Environment.ProcessId,
                        ["features"] = new JsonArray("kvm"),
                    });
                case ("PUT", "vmm.shutdown"):
                    return (204, null, () => ExitSoon(0, "VMM shutdown requested"));
                case ("GET", "vm.info"):
                    return _state is null
                        ? NotCreated("The VM information is not available")
                        : Ok(new JsonObject
                        {
                            ["config"] = _config!.DeepClone(),
                            ["state"] = _state,
                            ["memory_actual_size"] = _config!["memory"]?["size"]?.GetValue<long>() ?? 0,
                        });
                case ("PUT", "vm.create"):
                    return Create(text);
                case ("PUT", "vm.boot"):
                    return Boot();
                case ("PUT", "vm.pause"):
                    return _state switch
                    {
                        null => NotCreated("The VM could not be paused"),
                        "Running" => Transition("Paused"),
                        _ => (405, Errors("Error from API", "The VM could not be paused", $"Invalid VM state transition: {_state} to Paused"), null),
                    };
                case ("PUT", "vm.resume"):
                    return _state switch
                    {
                        null => NotCreated("The VM could not be resumed"),
                        "Paused" => Transition("Running"),
                        _ => (405, Errors("Error from API", "The VM could not be resumed", $"Invalid VM state transition: {_state} to Running"), null),
                    };
                case ("PUT", "vm.shutdown"):
                    return _state switch
                    {
                        null => NotCreated("The VM could not be shut down"),
                        "Running" or "Paused" => Transition("Shutdown"),
                        _ => (405, Errors("Error from API", "The VM could not be shut down", $"Invalid VM state transition: {_state} to Shutdown"), null),
                    };
                case ("PUT", "vm.power-button"):
                    return PowerButton();
                case ("PUT", "vm.delete"):
                    _state = null;
                    _config = null;
                    return Ok();
                case ("PUT", "vm.snapshot"):
                    return Snapshot(text);
                case ("PUT", "vm.restore"):
                    return Restore(text);
                default:
                    return (404, Errors("Not Found"), null);
            }
        }

        private (int, JsonNode?, Action?) Transition(string to)
        {
            _state = to;
            return Ok();
        }

        private (int, JsonNode?, Action?) Create(string text)
        {
            if (_state is not null)
            {
                return (500, Errors("Error from API", "The VM could not be created", "The VM is already created"), null);
            }

            JsonObject? config;
            try
            {
                config = JsonNode.Parse(text) as JsonObject;
            }
            catch (JsonException ex)
            {
                return (400, Errors("Failed to deserialize JSON", ex.Message), null);
            }

            if (config?["payload"] is not JsonObject payload)
            {
                return (400, Errors("Failed to deserialize JSON", "missing field `payload`"), null);
            }

            if (payload["kernel"] is null && payload["firmware"] is null && payload["igvm"] is null)
            {
                return (500, Errors("Error from API", "The VM could not be created", "Error validating configuration", "No kernel or firmware specified"), null);
            }

            var cpus = config["cpus"]?["boot_vcpus"]?.GetValue<int>() ?? 1;
            var max = config["cpus"]?["max_vcpus"]?.GetValue<int>() ?? cpus;
            if (cpus < 1 || max < cpus)
            {
                return (500, Errors("Error from API", "The VM could not be created", "Error validating configuration", "Max CPUs lower than boot CPUs"), null);
            }

            config["cpus"] ??= new JsonObject { ["boot_vcpus"] = 1, ["max_vcpus"] = 1 };
            config["memory"] ??= new JsonObject { ["size"] = 512L * 1024 * 1024 };
            _config = config;
            _state = "Created";
            return Ok();
        }

        private (int, JsonNode?, Action?) Boot()
        {
            if (_state is null)
            {
                return NotCreated("The VM could not boot");
            }

            if (_state is "Running" or "Paused")
            {
                return (500, Errors("Error from API", "The VM could not boot", "VM is already running"), null);
            }

            // Like cloud-hypervisor, the payload and disks are opened at boot, not at create.
            var payload = _config!["payload"]!;
            foreach (var (what, path) in new[] { ("kernel", payload["kernel"]?.GetValue<string>()), ("initramfs", payload["initramfs"]?.GetValue<string>()) })
            {
                if (path is not null && !File.Exists(path))
                {
                    return (500, Errors("Error from API", "The VM could not boot", $"Error from VM: Cannot load the {what} into memory", "No such file or directory (os error 2)"), null);
                }
            }

            foreach (var disk in (_config["disks"] as JsonArray ?? []).OfType<JsonObject>())
            {
                var path = disk["path"]?.GetValue<string>() ?? "";
                if (!File.Exists(path))
                {
                    return (500, Errors("Error from API", "The VM could not boot", "Error from VM: Error creating device manager", $"Cannot open disk path {path}", "No such file or directory (os error 2)"), null);
                }
            }

            _state = "Running";
            var cmdline = payload["cmdline"]?.GetValue<string>() ?? "";
            Serial(
                "[    0.000000] Linux version 6.1.0 (hypercore cloud-hypervisor stand-in)",
                $"[    0.000000] Command line: {cmdline}",
                $"[    0.010000] Memory: {_config["memory"]!["size"]!.GetValue<long>() / (1024 * 1024)}MiB, {_config["cpus"]!["boot_vcpus"]} vCPU(s)",
                "HYPERCORE-GUEST-READY");
            return Ok();
        }

        private (int, JsonNode?, Action?) PowerButton()
        {
            if (_state is null)
            {
                return NotCreated("The power button could not be triggered");
            }

            if (_state is not ("Running" or "Paused"))
            {
                return (405, Errors("Error from API", "The power button could not be triggered", "VM is not booted"), null);
            }

            var cmdline = _config!["payload"]?["cmdline"]?.GetValue<string>() ?? "";
            if (cmdline.Contains(IgnorePowerButton, StringComparison.Ordinal) || _state == "Paused")
            {
                return Ok(); // a paused guest (or one without ACPI) does not react
            }

            // The guest runs its shutdown and powers off; cloud-hypervisor then exits.
            return (204, null, () => _ = Task.Run(async () =>
            {
                await Task.Delay(300);
                lock (_lock)
                {
                    Serial("reboot: Power down");
                }

                ExitSoon(0, "guest powered off");
            }));
        }

        private (int, JsonNode?, Action?) Snapshot(string text)
        {
            if (_state is null)
            {
                return NotCreated("The VM could not be snapshotted");
            }

            if (_state != "Paused")
            {
                return (500, Errors("Error from API", "The VM could not be snapshotted", "Error from VM: The VM must be paused to be snapshotted"), null);
            }

            var url = JsonNode.Parse(text)?["destination_url"]?.GetValue<string>() ?? "";
            if (!url.StartsWith("file://", StringComparison.Ordinal))
            {
                return (500, Errors("Error from API", "The VM could not be snapshotted", $"Invalid snapshot destination URL: {url}"), null);
            }

            var dir = url["file://".Length..];
            File.WriteAllText(Path.Combine(dir, "config.json"), _config!.ToJsonString());
            File.WriteAllText(Path.Combine(dir, "state.json"), new JsonObject { ["state"] = _state }.ToJsonString());
            // cloud-hypervisor writes guest memory as "memory-ranges" beside config.json and state.json.
            File.WriteAllText(Path.Combine(dir, "memory-ranges"), $"guest memory of {_config!["memory"]?["size"]} bytes (stand-in)\n");
            return Ok();
        }

        /// <summary>
        /// PUT vm.restore (OpenAPI RestoreConfig: source_url required, prefault): only before a VM is created (404 when
        /// one is); reads config.json, state.json and memory-ranges from the file:// directory, reopens the disks at
        /// the paths saved in config.json, and leaves the VM Paused, as cloud-hypervisor does (vm.resume runs it).
        /// </summary>
        private (int, JsonNode?, Action?) Restore(string text)
        {
            if (_state is not null)
            {
                return (404, Errors("Error from API", "The VM could not be restored", "The VM is already created"), null);
            }

            string? url;
            try
            {
                url = JsonNode.Parse(text)?["source_url"]?.GetValue<string>();
            }
            catch (JsonException ex)
            {
                return (400, Errors("Error from API", "The VM could not be restored", ex.Message), null);
            }

            if (url is null || !url.StartsWith("file://", StringComparison.Ordinal))
            {
                return (400, Errors("Error from API", "The VM could not be restored", $"Invalid source URL: {url}"), null);
            }

            var dir = url["file://".Length..];
            JsonObject? config;
            try
            {
                config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json"))) as JsonObject;
                _ = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "state.json")));
                if (!File.Exists(Path.Combine(dir, "memory-ranges")))
                {
                    throw new FileNotFoundException("memory-ranges: No such file or directory (os error 2)");
                }
            }
            catch (Exception ex) when (ex is IOException or JsonException)
            {
                return (500, Errors("Error from API", "The VM could not be restored", $"Error restoring VM: Failed to restore from snapshot: {ex.Message}"), null);
            }

            if (config is null)
            {
                return (500, Errors("Error from API", "The VM could not be restored", "Error restoring VM: Failed to deserialize the VM configuration"), null);
            }

            foreach (var disk in config["disks"]?.AsArray() ?? [])
            {
                if (disk?["path"]?.GetValue<string>() is { } path && !File.Exists(path))
                {
                    return (500, Errors("Error from API", "The VM could not be restored", $"Error restoring VM: Failed to open disk image {path}: No such file or directory (os error 2)"), null);
                }
            }

            _config = config;
            _state = "Paused";
            return Ok();
        }

        private void Serial(params string[] lines)
        {
            var serial = _config?["serial"];
            var mode = serial?["mode"]?.GetValue<string>() ?? "Null";
            switch (mode)
            {
                case "File":
                    File.AppendAllLines(serial!["file"]!.GetValue<string>(), lines);
                    break;
                case "Tty":
                    foreach (var line in lines)
                    {
                        Console.WriteLine(line);
                    }

                    break;
                default:
                    break;
            }
        }

        private static void ExitSoon(int code, string why) => _ = Task.Run(async () =>
        {
            await Task.Delay(50);
            Console.WriteLine($"cloud-hypervisor exiting: {why}");
            Environment.Exit(code);
        });
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Hypercore.Drivers.Firecracker;

/// <summary>
/// Runs each MicroVM in its own firecracker process (optionally through the jailer), started detached with
/// <c>--api-sock RuntimeDirectory/&lt;uid&gt;/api.sock</c> and configured over that socket: PUT /machine-config,
/// /boot-source, /drives/{id}, /network-interfaces/{id}, /mmds/config and /mmds, then PUT /actions InstanceStart.
/// Pause and resume are PATCH /vm; a graceful stop is PUT /actions SendCtrlAltDel (the guest reboots with reboot=k
/// and firecracker exits), then SIGKILL after the grace period. A 400 answer's fault_message becomes the message of
/// a <see cref="DriverException"/>, which the reconciler shows as a condition.
/// </summary>
public sealed partial class FirecrackerDriver : IHypervisorDriver
{
    public const string ProviderName = "firecracker";

    private const string ApiSocketName = "api.sock";

    private readonly FirecrackerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<FirecrackerDriver> _log;
    private readonly ApiPolicy _policy;
    private readonly BinaryVersionCache _version = new("firecracker");

    public FirecrackerDriver(IOptions<FirecrackerOptions> options, TimeProvider time, ILogger<FirecrackerDriver> log)
    {
        _options = options.Value;
        _time = time;
        _log = log;
        _policy = new ApiPolicy(_options.ApiTimeout, _options.ApiConnectRetries, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1));
    }

    public string Name => ProviderName;

    public DriverCapabilities Capabilities =>
        DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.MetadataService |
        DriverCapabilities.Tap | DriverCapabilities.Initrd | DriverCapabilities.BlockDevices | DriverCapabilities.Snapshot;

    public async Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var (path, tried) = BinaryLocator.Resolve(_options.BinaryPath);
            if (path is null)
            {
                return DriverAvailability.Unavailable(BinaryLocator.NotFoundMessage("firecracker", tried));
            }

            if (_options.Jailer.Enabled)
            {
                var (jailer, jailerTried) = BinaryLocator.Resolve(_options.Jailer.BinaryPath);
                if (jailer is null)
                {
                    return DriverAvailability.Unavailable(BinaryLocator.NotFoundMessage("jailer", jailerTried));
                }
            }

            if (_options.RequireKvm && KvmDevice.Problem(_options.KvmDevicePath, "firecracker") is { } noKvm)
            {
                return DriverAvailability.Unavailable(noKvm);
            }

            var version = await _version.GetAsync(path, cancellationToken);
            return version is null
                ? DriverAvailability.Unavailable($"{path} --version failed: the binary is not runnable here")
                : DriverAvailability.Ok($"{version} ({path})");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return DriverAvailability.Unavailable("firecracker availability check failed: " + ex.Message);
        }
    }

    public Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default) =>
        ListCoreAsync(cancellationToken);

    public async Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        var dir = Directory(vm.Uid);
        var record = dir.ReadRecord();
        return record is null ? VmRuntimeInfo.NotFound(vm.Uid) : await InspectRecordAsync(record, cancellationToken);
    }

    public async Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        var ct = cancellationToken;
        var dir = Directory(vm.Uid);
        var existing = dir.ReadRecord();
        if (existing is not null && VmDirectory.IsRecordedProcessAlive(existing))
        {
            var live = await InspectRecordAsync(existing, ct);
            if (live.State is LiveState.Running or LiveState.Paused)
            {
                return live; // idempotent: already booted
            }
        }

        // A half-configured or dead instance: clear it before starting afresh.
        await StopAsync(vm, TimeSpan.Zero, ct);

        var (binary, tried) = BinaryLocator.Resolve(_options.BinaryPath);
        if (binary is null)
        {
            throw new DriverException(Conditions.ReasonProviderUnavailable, BinaryLocator.NotFoundMessage("firecracker", tried));
        }

        dir.Create();
        var jail = _options.Jailer.Enabled ? await PrepareJailAsync(vm, binary, ct) : null;
        var socket = jail is null ? dir.File(ApiSocketName) : jail.Root + JailerCommand.SocketInJail;
        VmDirectory.DeleteFile(socket); // firecracker refuses to bind over a stale socket
        UnixSocketApi.EnsurePathFits(socket);

        var taps = new List<string>();
        for (var i = 0; i < vm.Spec.Interfaces.Count; i++)
        {
            var tap = TapDevices.TapName(vm.Uid, i);
            await TapDevices.CreateAsync(tap, vm.Spec.Interfaces[i].Bridge, jail is null ? null : _options.Jailer.Uid, jail is null ? null : _options.Jailer.Gid, ct);
            taps.Add(tap);
        }

        string launched;
        IReadOnlyList<string> args;
        if (jail is null)
        {
            launched = binary;
            args = IsFirecrackerId(vm.Uid) ? ["--api-sock", socket, "--id", vm.Uid] : ["--api-sock", socket];
        }
        else
        {
            launched = BinaryLocator.Resolve(_options.Jailer.BinaryPath).Path
                ?? throw new DriverException(Conditions.ReasonProviderUnavailable, "jailer binary not found: " + _options.Jailer.BinaryPath);
            args = JailerCommand.Arguments(_options.Jailer, binary, vm.Uid);
        }

        var pid = await HostProcess.StartDetachedAsync(launched, args, dir.Path, dir.ConsoleLog, ct);
        var record = new VmRecord
        {
            Uid = vm.Uid,
            Provider = ProviderName,
            Key = vm.Key.ToString(),
            Pid = pid,
            PidStartTicks = HostProcess.StartTicks(pid) ?? 0,
            Binary = binary,
            ControlSocket = socket,
            ArgvMarker = jail is null ? socket : vm.Uid,
            ConsoleLog = dir.ConsoleLog,
            StartedAt = _time.GetUtcNow(),
            Taps = taps,
            Extra = jail is null ? new Dictionary<string, string>() : new Dictionary<string, string> { ["jail"] = jail.Directory },
        };
        dir.WriteRecord(record);
        LogLaunched(vm.Key.ToString(), pid, socket);

        try
        {
            using var api = new UnixSocketApi(socket, _policy, _time);
            await WaitForApiAsync(api, record, ct);
            await ConfigureAndBootAsync(api, vm, jail, taps, ct);
            record = record with { StartedAt = _time.GetUtcNow() };
            dir.WriteRecord(record);
            return Info(record, LiveState.Running);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            LogStartFailed(vm.Key.ToString(), ex.Message);
            await KillAndClearAsync(dir, record, vm, CancellationToken.None);
            throw ex switch
            {
                DriverException d => d,
                TimeoutRejectedException => new DriverException("HypervisorError", $"firecracker API on {socket} timed out: {ex.Message}", ex),
                HttpRequestException => new DriverException("HypervisorError", $"firecracker API on {socket} unreachable: {ex.Message}", ex),
                _ => new DriverException("HypervisorError", "firecracker start failed: " + ex.Message, ex),
            };
        }
    }

    public async Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        using var api = Api(vm, out _);
        await ExpectSuccessAsync(api, HttpMethod.Patch, "/vm", new JsonObject { ["state"] = "Paused" }, cancellationToken);
    }

    public async Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        using var api = Api(vm, out _);
        await ExpectSuccessAsync(api, HttpMethod.Patch, "/vm", new JsonObject { ["state"] = "Resumed" }, cancellationToken);
    }

    public async Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default)
    {
        var dir = Directory(vm.Uid);
        var record = dir.ReadRecord();
        if (record is not null && VmDirectory.IsRecordedProcessAlive(record) && gracePeriod > TimeSpan.Zero)
        {
            var graceful = await TryCtrlAltDelAsync(record, cancellationToken) &&
                           await HostProcess.WaitForExitAsync(record.Pid, gracePeriod, _time, cancellationToken);
            LogStopped(vm.Key.ToString(), record.Pid, graceful ? "guest powered off" : $"killed after {gracePeriod.TotalSeconds:0.#} s grace");
        }

        await KillAndClearAsync(dir, record, vm, cancellationToken);
    }

    public async Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        var dir = Directory(vm.Uid);
        var jailDir = dir.ReadRecord()?.Extra.GetValueOrDefault("jail");
        await StopAsync(vm, TimeSpan.Zero, cancellationToken);
        dir.Delete();
        if (_options.Jailer.Enabled || jailDir is not null)
        {
            var binary = BinaryLocator.Resolve(_options.BinaryPath).Path ?? _options.BinaryPath;
            jailDir ??= JailerCommand.JailDirectory(_options.Jailer, binary, vm.Uid);
            if (System.IO.Directory.Exists(jailDir))
            {
                System.IO.Directory.Delete(jailDir, recursive: true);
            }

            RemoveJailCgroup(vm.Uid);
        }
    }

    public string ConsoleLogPath(MicroVm vm) => Directory(vm.Uid).ConsoleLog;

    /// <summary>
    /// Full snapshot into <paramref name="directory"/> (files "vmstate" and "memory"): pauses a running VM for the
    /// snapshot and resumes it afterwards (PUT /snapshot/create needs a paused VM).
    /// </summary>
    public async Task CreateSnapshotAsync(MicroVm vm, string directory, CancellationToken cancellationToken = default)
    {
        using var api = Api(vm, out var record);
        if (record.Extra.ContainsKey("jail"))
        {
            throw new DriverException(Conditions.ReasonUnsupported, "snapshots of jailed VMs are written inside the jail; not supported by this driver");
        }

        var state = await StateAsync(api, cancellationToken);
        if (state == LiveState.Running)
        {
            await ExpectSuccessAsync(api, HttpMethod.Patch, "/vm", new JsonObject { ["state"] = "Paused" }, cancellationToken);
        }

        try
        {
            System.IO.Directory.CreateDirectory(directory);
            await ExpectSuccessAsync(api, HttpMethod.Put, "/snapshot/create", new JsonObject
            {
                ["snapshot_type"] = "Full",
                ["snapshot_path"] = Path.Combine(directory, "vmstate"),
                ["mem_file_path"] = Path.Combine(directory, "memory"),
            }, cancellationToken);
        }
        finally
        {
            if (state == LiveState.Running)
            {
                await ExpectSuccessAsync(api, HttpMethod.Patch, "/vm", new JsonObject { ["state"] = "Resumed" }, cancellationToken);
            }
        }
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

    private VmDirectory Directory(string uid) => new(_options.RuntimeDirectory, uid);

    private UnixSocketApi Api(MicroVm vm, out VmRecord record)
    {
        record = Directory(vm.Uid).ReadRecord() is { } r && VmDirectory.IsRecordedProcessAlive(r)
            ? r
            : throw new DriverException("NotRunning", $"no firecracker process is running for {vm.Key}");
        return new UnixSocketApi(record.ControlSocket, _policy, _time);
    }

    private async Task<IReadOnlyList<VmRuntimeInfo>> ListCoreAsync(CancellationToken ct)
    {
        var found = new List<VmRuntimeInfo>();
        foreach (var (_, record) in VmDirectory.Scan(_options.RuntimeDirectory))
        {
            if (record.Provider == ProviderName && VmDirectory.IsRecordedProcessAlive(record))
            {
                found.Add(await InspectRecordAsync(record, ct));
            }
        }

        return found;
    }

    private async Task<VmRuntimeInfo> InspectRecordAsync(VmRecord record, CancellationToken ct)
    {
        if (!VmDirectory.IsRecordedProcessAlive(record))
        {
            return Info(record, LiveState.Exited) with
            {
                Exit = ExitKind.Crashed,
                Pid = null,
                Detail = GuestPanic.FromConsole(record.ConsoleLog) ?? $"firecracker process {record.Pid} is gone",
            };
        }

        try
        {
            using var api = new UnixSocketApi(record.ControlSocket, _policy, _time);
            return Info(record, await StateAsync(api, ct));
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException or DriverException)
        {
            // Alive but not answering: never declare it dead.
            return Info(record, LiveState.Unknown) with { Detail = "firecracker API not answering: " + ex.Message };
        }
    }

    private static async Task<LiveState> StateAsync(UnixSocketApi api, CancellationToken ct)
    {
        var response = await api.GetAsync("/", ct);
        if (!response.IsSuccess)
        {
            throw Fault(HttpMethod.Get, "/", response);
        }

        return response.Json?["state"]?.GetValue<string>() switch
        {
            "Not started" => LiveState.Created,
            "Running" => LiveState.Running,
            "Paused" => LiveState.Paused,
            var other => throw new DriverException("HypervisorError", $"firecracker reported unknown state \"{other}\""),
        };
    }

    private VmRuntimeInfo Info(VmRecord record, LiveState state) => new()
    {
        Uid = record.Uid,
        State = state,
        Pid = record.Pid,
        ConsoleLogPath = record.ConsoleLog,
        BootTime = record.StartedAt,
        Detail = record.Extra.ContainsKey("jail") ? "firecracker (jailed)" : "firecracker",
    };

    /// <summary>Waits for the API socket to answer GET /, failing fast if the process dies on the way.</summary>
    private async Task WaitForApiAsync(UnixSocketApi api, VmRecord record, CancellationToken ct)
    {
        var ready = new ResiliencePipelineBuilder { TimeProvider = _time }
            .AddTimeout(_options.StartTimeout)
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>(UnixSocketApi.IsConnectFailure),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Constant,
                Delay = TimeSpan.FromMilliseconds(50),
            })
            .Build();
        try
        {
            await ready.ExecuteAsync(
                async token =>
                {
                    if (!HostProcess.IsAlive(record.Pid))
                    {
                        throw new DriverException("HypervisorError", $"firecracker exited during start: {VmmOutput.Tail(record.ConsoleLog)}");
                    }

                    var response = await api.GetAsync("/", token);
                    if (!response.IsSuccess)
                    {
                        throw Fault(HttpMethod.Get, "/", response);
                    }
                },
                ct);
        }
        catch (TimeoutRejectedException ex)
        {
            throw new DriverException("HypervisorError", $"firecracker API socket {api.SocketPath} did not answer within {_options.StartTimeout.TotalSeconds:0.#} s: {VmmOutput.Tail(record.ConsoleLog)}", ex);
        }
    }

    private async Task ConfigureAndBootAsync(UnixSocketApi api, MicroVm vm, Jail? jail, IReadOnlyList<string> taps, CancellationToken ct)
    {
        var spec = vm.Spec;
        string InVm(string hostPath, string name) => jail is null ? hostPath : jail.Paths[name];

        await ExpectSuccessAsync(api, HttpMethod.Put, "/machine-config", new JsonObject
        {
            ["vcpu_count"] = spec.Vcpu,
            ["mem_size_mib"] = spec.MemoryInMb,
        }, ct);

        var boot = new JsonObject
        {
            ["kernel_image_path"] = InVm(spec.Kernel.Image, "kernel"),
            ["boot_args"] = KernelArgs.Build(spec, _options.DefaultBootArgs),
        };
        if (spec.Initrd is not null)
        {
            boot["initrd_path"] = InVm(spec.Initrd.Image, "initrd");
        }

        await ExpectSuccessAsync(api, HttpMethod.Put, "/boot-source", boot, ct);

        foreach (var (volume, isRoot) in Volumes(spec))
        {
            await ExpectSuccessAsync(api, HttpMethod.Put, "/drives/" + Uri.EscapeDataString(volume.Id), new JsonObject
            {
                ["drive_id"] = volume.Id,
                ["path_on_host"] = InVm(volume.HostPath, "drive-" + volume.Id),
                ["is_root_device"] = isRoot,
                ["is_read_only"] = volume.IsReadOnly,
            }, ct);
        }

        for (var i = 0; i < spec.Interfaces.Count; i++)
        {
            var nic = spec.Interfaces[i];
            await ExpectSuccessAsync(api, HttpMethod.Put, "/network-interfaces/" + Uri.EscapeDataString(nic.DeviceId), new JsonObject
            {
                ["iface_id"] = nic.DeviceId,
                ["host_dev_name"] = taps[i],
                ["guest_mac"] = TapDevices.GuestMac(vm.Uid, nic, i),
            }, ct);
        }

        if (spec.Metadata.Count > 0)
        {
            if (spec.Interfaces.Count > 0)
            {
                // The guest reaches MMDS (169.254.169.254) through the first interface.
                await ExpectSuccessAsync(api, HttpMethod.Put, "/mmds/config", new JsonObject
                {
                    ["version"] = _options.MmdsVersion,
                    ["network_interfaces"] = new JsonArray(spec.Interfaces[0].DeviceId),
                }, ct);
            }

            var data = new JsonObject();
            foreach (var (k, v) in spec.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                data[k] = v;
            }

            await ExpectSuccessAsync(api, HttpMethod.Put, "/mmds", data, ct);
        }

        await ExpectSuccessAsync(api, HttpMethod.Put, "/actions", new JsonObject { ["action_type"] = "InstanceStart" }, ct);
    }

    private static IEnumerable<(VolumeSpec Volume, bool IsRoot)> Volumes(MicroVmSpec spec) =>
        (spec.RootVolume is null ? [] : new[] { (spec.RootVolume, true) }).Concat(spec.AdditionalVolumes.Select(v => (v, false)));

    private static async Task ExpectSuccessAsync(UnixSocketApi api, HttpMethod method, string path, JsonNode body, CancellationToken ct)
    {
        var response = await api.SendAsync(method, path, body, ct);
        if (!response.IsSuccess)
        {
            throw Fault(method, path, response);
        }
    }

    /// <summary>Asks the guest to power off (resuming it first if paused). False when the API would not take it.</summary>
    private async Task<bool> TryCtrlAltDelAsync(VmRecord record, CancellationToken ct)
    {
        try
        {
            using var api = new UnixSocketApi(record.ControlSocket, _policy, _time);
            var state = await StateAsync(api, ct);
            if (state == LiveState.Created)
            {
                return false; // nothing booted: nothing to power off
            }

            if (state == LiveState.Paused)
            {
                await ExpectSuccessAsync(api, HttpMethod.Patch, "/vm", new JsonObject { ["state"] = "Resumed" }, ct);
            }

            await ExpectSuccessAsync(api, HttpMethod.Put, "/actions", new JsonObject { ["action_type"] = "SendCtrlAltDel" }, ct);
            return true;
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException or DriverException)
        {
            LogGracefulFailed(record.Uid, ex.Message);
            return false;
        }
    }

    /// <summary>Kills the process if alive and removes socket, taps, record and pid file (keeps console.log).</summary>
    private async Task KillAndClearAsync(VmDirectory dir, VmRecord? record, MicroVm vm, CancellationToken ct)
    {
        if (record is not null && VmDirectory.IsRecordedProcessAlive(record))
        {
            await HostProcess.KillAsync(record.Pid, _time, ct);
        }

        if (record is not null && record.ControlSocket.Length > 0)
        {
            VmDirectory.DeleteFile(record.ControlSocket);
        }

        VmDirectory.DeleteFile(dir.File(ApiSocketName));
        var taps = (record?.Taps ?? []).Concat(vm.Spec.Interfaces.Select((_, i) => TapDevices.TapName(vm.Uid, i))).Distinct(StringComparer.Ordinal);
        foreach (var tap in taps)
        {
            await TapDevices.DeleteAsync(tap, ct);
        }

        dir.DeleteRecord();
    }

    private sealed record Jail(string Directory, string Root, IReadOnlyDictionary<string, string> Paths);

    /// <summary>Links kernel, initrd and drives into the jail root, owned by the jailer uid/gid.</summary>
    private async Task<Jail> PrepareJailAsync(MicroVm vm, string binary, CancellationToken ct)
    {
        var o = _options.Jailer;
        var root = JailerCommand.JailRoot(o, binary, vm.Uid);
        System.IO.Directory.CreateDirectory(Path.Combine(root, "run"));
        var files = new Dictionary<string, string> { ["kernel"] = vm.Spec.Kernel.Image };
        if (vm.Spec.Initrd is not null)
        {
            files["initrd"] = vm.Spec.Initrd.Image;
        }

        foreach (var (volume, _) in Volumes(vm.Spec))
        {
            files["drive-" + volume.Id] = volume.HostPath;
        }

        var paths = new Dictionary<string, string>();
        foreach (var (name, host) in files)
        {
            if (!File.Exists(host))
            {
                throw new DriverException("HypervisorError", $"cannot place {name} in the jail: {host} does not exist");
            }

            var target = Path.Combine(root, name);
            VmDirectory.DeleteFile(target);
            var link = await HostProcess.RunAsync("ln", [host, target], TimeSpan.FromSeconds(10), ct);
            if (!link.Succeeded)
            {
                File.Copy(host, target); // another filesystem: hard links cannot cross it
            }

            var chown = await HostProcess.RunAsync("chown", [$"{o.Uid}:{o.Gid}", target], TimeSpan.FromSeconds(10), ct);
            if (!chown.Succeeded)
            {
                throw new DriverException("HypervisorError", $"chown {target} failed: {chown.Diagnostic}");
            }

            paths[name] = "/" + name;
        }

        return new Jail(JailerCommand.JailDirectory(o, binary, vm.Uid), root, paths);
    }

    private void RemoveJailCgroup(string uid)
    {
        var parent = _options.Jailer.ParentCgroup.Length > 0 ? _options.Jailer.ParentCgroup : "firecracker";
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
            LogGracefulFailed(uid, $"could not remove cgroup {dir}: {ex.Message}");
        }
    }

    [GeneratedRegex("^[a-zA-Z0-9-]{1,64}$")]
    private static partial Regex FirecrackerId();

    private static bool IsFirecrackerId(string uid) => FirecrackerId().IsMatch(uid);

    [LoggerMessage(3300, LogLevel.Information, "{Key}: firecracker started (pid {Pid}, api {Socket})")]
    private partial void LogLaunched(string key, int pid, string socket);

    [LoggerMessage(3301, LogLevel.Warning, "{Key}: firecracker start failed: {Message}")]
    private partial void LogStartFailed(string key, string message);

    [LoggerMessage(3302, LogLevel.Information, "{Key}: firecracker pid {Pid} stopped: {How}")]
    private partial void LogStopped(string key, int pid, string how);

    [LoggerMessage(3303, LogLevel.Warning, "{Uid}: {Message}")]
    private partial void LogGracefulFailed(string uid, string message);
}

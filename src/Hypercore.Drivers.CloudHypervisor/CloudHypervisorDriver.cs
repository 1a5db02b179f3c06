using System.Text.Json;
using System.Text.Json.Nodes;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Hypercore.Drivers.CloudHypervisor;

/// <summary>
/// Runs each MicroVM in its own cloud-hypervisor process, started detached with
/// <c>--api-socket path=RuntimeDirectory/&lt;uid&gt;/api.sock</c>, then PUT /api/v1/vm.create (VmConfig) and
/// vm.boot. Live state is GET vm.info (404 until vm.create); pause and resume are vm.pause and vm.resume; a
/// graceful stop presses the ACPI power button (vm.power-button) and waits, then vm.shutdown and vmm.shutdown, then
/// SIGKILL. Cloud Hypervisor's error bodies (a JSON array of messages, outermost first) become the message of a
/// <see cref="DriverException"/>.
/// </summary>
public sealed partial class CloudHypervisorDriver : IHypervisorDriver
{
    public const string ProviderName = "cloud-hypervisor";

    private const string ApiSocketName = "api.sock";
    private const string Api = "/api/v1/";

    private readonly CloudHypervisorOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<CloudHypervisorDriver> _log;
    private readonly ApiPolicy _policy;
    private readonly BinaryVersionCache _version = new("cloud-hypervisor");

    public CloudHypervisorDriver(IOptions<CloudHypervisorOptions> options, TimeProvider time, ILogger<CloudHypervisorDriver> log)
    {
        _options = options.Value;
        _time = time;
        _log = log;
        _policy = new ApiPolicy(_options.ApiTimeout, _options.ApiConnectRetries, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1));
    }

    public string Name => ProviderName;

    public DriverCapabilities Capabilities =>
        DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.Tap |
        DriverCapabilities.Initrd | DriverCapabilities.BlockDevices | DriverCapabilities.Snapshot;

    public async Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var (path, tried) = BinaryLocator.Resolve(_options.BinaryPath);
            if (path is null)
            {
                return DriverAvailability.Unavailable(BinaryLocator.NotFoundMessage("cloud-hypervisor", tried));
            }

            if (_options.RequireKvm && KvmDevice.Problem(_options.KvmDevicePath, "cloud-hypervisor") is { } noKvm)
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
            return DriverAvailability.Unavailable("cloud-hypervisor availability check failed: " + ex.Message);
        }
    }

    public async Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        var found = new List<VmRuntimeInfo>();
        foreach (var (_, record) in VmDirectory.Scan(_options.RuntimeDirectory))
        {
            if (record.Provider == ProviderName && VmDirectory.IsRecordedProcessAlive(record))
            {
                found.Add(await InspectRecordAsync(record, cancellationToken));
            }
        }

        return found;
    }

    public async Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        var record = Directory(vm.Uid).ReadRecord();
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

        await StopAsync(vm, TimeSpan.Zero, ct);

        var (binary, tried) = BinaryLocator.Resolve(_options.BinaryPath);
        if (binary is null)
        {
            throw new DriverException(Conditions.ReasonProviderUnavailable, BinaryLocator.NotFoundMessage("cloud-hypervisor", tried));
        }

        dir.Create();
        var socket = dir.File(ApiSocketName);
        UnixSocketApi.EnsurePathFits(socket);
        VmDirectory.DeleteFile(socket);
        VmDirectory.DeleteFile(socket + ".lock");

        var taps = new List<string>();
        for (var i = 0; i < vm.Spec.Interfaces.Count; i++)
        {
            var tap = TapDevices.TapName(vm.Uid, i);
            await TapDevices.CreateAsync(tap, vm.Spec.Interfaces[i].Bridge, null, null, ct);
            taps.Add(tap);
        }

        var pid = await HostProcess.StartDetachedAsync(binary, ["--api-socket", $"path={socket}"], dir.Path, dir.File("vmm.log"), ct);
        var record = new VmRecord
        {
            Uid = vm.Uid,
            Provider = ProviderName,
            Key = vm.Key.ToString(),
            Pid = pid,
            PidStartTicks = HostProcess.StartTicks(pid) ?? 0,
            Binary = binary,
            ControlSocket = socket,
            ArgvMarker = socket,
            ConsoleLog = dir.ConsoleLog,
            StartedAt = _time.GetUtcNow(),
            Taps = taps,
        };
        dir.WriteRecord(record);
        LogLaunched(vm.Key.ToString(), pid, socket);

        try
        {
            using var api = new UnixSocketApi(socket, _policy, _time);
            await WaitForApiAsync(api, record, dir, ct);
            await ExpectSuccessAsync(api, HttpMethod.Put, "vm.create", VmConfig(vm, dir, taps), ct);
            await ExpectSuccessAsync(api, HttpMethod.Put, "vm.boot", null, ct);
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
                TimeoutRejectedException => new DriverException("HypervisorError", $"cloud-hypervisor API on {socket} timed out: {ex.Message}", ex),
                HttpRequestException => new DriverException("HypervisorError", $"cloud-hypervisor API on {socket} unreachable: {ex.Message}", ex),
                _ => new DriverException("HypervisorError", "cloud-hypervisor start failed: " + ex.Message, ex),
            };
        }
    }

    public async Task PauseAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        using var api = OpenApi(vm);
        await ExpectSuccessAsync(api, HttpMethod.Put, "vm.pause", null, cancellationToken);
    }

    public async Task ResumeAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        using var api = OpenApi(vm);
        await ExpectSuccessAsync(api, HttpMethod.Put, "vm.resume", null, cancellationToken);
    }

    public async Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken cancellationToken = default)
    {
        var ct = cancellationToken;
        var dir = Directory(vm.Uid);
        var record = dir.ReadRecord();
        if (record is not null && VmDirectory.IsRecordedProcessAlive(record))
        {
            using var api = new UnixSocketApi(record.ControlSocket, _policy, _time);
            var how = "shut down";
            if (gracePeriod > TimeSpan.Zero && await TryPowerButtonAsync(api, record, ct))
            {
                how = await WaitForGuestOffAsync(api, record, gracePeriod, ct)
                    ? "guest powered off"
                    : $"guest still up after {gracePeriod.TotalSeconds:0.#} s grace";
            }

            if (HostProcess.IsAlive(record.Pid))
            {
                await TryAsync(api, "vm.shutdown", record, ct);
                await TryAsync(api, "vmm.shutdown", record, ct);
                if (!await HostProcess.WaitForExitAsync(record.Pid, _options.VmmExitTimeout, _time, ct))
                {
                    how += "; killed";
                }
            }

            LogStopped(vm.Key.ToString(), record.Pid, how);
        }

        await KillAndClearAsync(dir, record, vm, ct);
    }

    public string ConsoleLogPath(MicroVm vm) => Directory(vm.Uid).ConsoleLog;

    public async Task CleanupAsync(MicroVm vm, CancellationToken cancellationToken = default)
    {
        var dir = Directory(vm.Uid);
        var record = dir.ReadRecord();
        if (record is not null && VmDirectory.IsRecordedProcessAlive(record))
        {
            using var api = new UnixSocketApi(record.ControlSocket, _policy, _time);
            await TryAsync(api, "vm.delete", record, cancellationToken);
        }

        await StopAsync(vm, TimeSpan.Zero, cancellationToken);
        dir.Delete();
    }

    /// <summary>
    /// Snapshot into <paramref name="directory"/> (PUT vm.snapshot, destination_url file://...). The VM must be
    /// paused for it: a running VM is paused for the snapshot and resumed afterwards.
    /// </summary>
    public async Task CreateSnapshotAsync(MicroVm vm, string directory, CancellationToken cancellationToken = default)
    {
        using var api = OpenApi(vm);
        var running = await StateAsync(api, cancellationToken) == LiveState.Running;
        if (running)
        {
            await ExpectSuccessAsync(api, HttpMethod.Put, "vm.pause", null, cancellationToken);
        }

        try
        {
            System.IO.Directory.CreateDirectory(directory);
            await ExpectSuccessAsync(api, HttpMethod.Put, "vm.snapshot", new JsonObject { ["destination_url"] = "file://" + Path.GetFullPath(directory) }, cancellationToken);
        }
        finally
        {
            if (running)
            {
                await ExpectSuccessAsync(api, HttpMethod.Put, "vm.resume", null, cancellationToken);
            }
        }
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

    private VmDirectory Directory(string uid) => new(_options.RuntimeDirectory, uid);

    private UnixSocketApi OpenApi(MicroVm vm)
    {
        var record = Directory(vm.Uid).ReadRecord() is { } r && VmDirectory.IsRecordedProcessAlive(r)
            ? r
            : throw new DriverException("NotRunning", $"no cloud-hypervisor process is running for {vm.Key}");
        return new UnixSocketApi(record.ControlSocket, _policy, _time);
    }

    private JsonObject VmConfig(MicroVm vm, VmDirectory dir, IReadOnlyList<string> taps)
    {
        var spec = vm.Spec;
        var payload = new JsonObject
        {
            ["kernel"] = spec.Kernel.Image,
            ["cmdline"] = KernelArgs.Build(spec, _options.DefaultCmdline),
        };
        if (spec.Initrd is not null)
        {
            payload["initramfs"] = spec.Initrd.Image;
        }

        var config = new JsonObject
        {
            ["payload"] = payload,
            ["cpus"] = new JsonObject { ["boot_vcpus"] = spec.Vcpu, ["max_vcpus"] = spec.Vcpu },
            ["memory"] = new JsonObject { ["size"] = (long)spec.MemoryInMb * 1024 * 1024 },
            ["serial"] = new JsonObject { ["mode"] = "File", ["file"] = dir.ConsoleLog },
            ["console"] = new JsonObject { ["mode"] = "Off" },
        };

        var volumes = (spec.RootVolume is null ? [] : new[] { spec.RootVolume }).Concat(spec.AdditionalVolumes).ToList();
        if (volumes.Count > 0)
        {
            config["disks"] = new JsonArray([.. volumes.Select(v => (JsonNode)new JsonObject
            {
                ["path"] = v.HostPath,
                ["readonly"] = v.IsReadOnly,
                ["id"] = v.Id,
            })]);
        }

        if (spec.Interfaces.Count > 0)
        {
            config["net"] = new JsonArray([.. spec.Interfaces.Select((nic, i) => (JsonNode)new JsonObject
            {
                ["tap"] = taps[i],
                ["mac"] = TapDevices.GuestMac(vm.Uid, nic, i),
                ["id"] = nic.DeviceId,
            })]);
        }

        return config;
    }

    private async Task<VmRuntimeInfo> InspectRecordAsync(VmRecord record, CancellationToken ct)
    {
        if (!VmDirectory.IsRecordedProcessAlive(record))
        {
            return Info(record, LiveState.Exited) with
            {
                Exit = ExitKind.Crashed,
                Pid = null,
                Detail = GuestPanic.FromConsole(record.ConsoleLog) ?? $"cloud-hypervisor process {record.Pid} is gone",
            };
        }

        try
        {
            using var api = new UnixSocketApi(record.ControlSocket, _policy, _time);
            var state = await StateAsync(api, ct);
            var info = Info(record, state);
            return state != LiveState.Exited ? info
                : GuestPanic.FromConsole(record.ConsoleLog) is { } panic ? info with { Exit = ExitKind.Crashed, Detail = panic }
                : info with { Exit = ExitKind.GuestShutdown, Detail = "the guest shut down" };
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException or DriverException)
        {
            return Info(record, LiveState.Unknown) with { Detail = "cloud-hypervisor API not answering: " + ex.Message };
        }
    }

    private static async Task<LiveState> StateAsync(UnixSocketApi api, CancellationToken ct)
    {
        var response = await api.GetAsync(Api + "vm.info", ct);
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

    private static VmRuntimeInfo Info(VmRecord record, LiveState state) => new()
    {
        Uid = record.Uid,
        State = state,
        Pid = record.Pid,
        ConsoleLogPath = record.ConsoleLog,
        BootTime = record.StartedAt,
        Detail = "cloud-hypervisor",
    };

    private async Task WaitForApiAsync(UnixSocketApi api, VmRecord record, VmDirectory dir, CancellationToken ct)
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
                        throw new DriverException("HypervisorError", $"cloud-hypervisor exited during start: {VmmOutput.Tail(dir.File("vmm.log"))}");
                    }

                    var response = await api.GetAsync(Api + "vmm.ping", token);
                    if (!response.IsSuccess)
                    {
                        throw Error(HttpMethod.Get, "vmm.ping", response);
                    }
                },
                ct);
        }
        catch (TimeoutRejectedException ex)
        {
            throw new DriverException("HypervisorError", $"cloud-hypervisor API socket {api.SocketPath} did not answer within {_options.StartTimeout.TotalSeconds:0.#} s: {VmmOutput.Tail(dir.File("vmm.log"))}", ex);
        }
    }

    private static async Task ExpectSuccessAsync(UnixSocketApi api, HttpMethod method, string endpoint, JsonNode? body, CancellationToken ct)
    {
        var response = await api.SendAsync(method, Api + endpoint, body, ct);
        if (!response.IsSuccess)
        {
            throw Error(method, endpoint, response);
        }
    }

    /// <summary>Best effort call used while stopping: failures are logged, not thrown.</summary>
    private async Task TryAsync(UnixSocketApi api, string endpoint, VmRecord record, CancellationToken ct)
    {
        try
        {
            await ExpectSuccessAsync(api, HttpMethod.Put, endpoint, null, ct);
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException or DriverException)
        {
            LogStopStep(record.Uid, endpoint, ex.Message);
        }
    }

    private async Task<bool> TryPowerButtonAsync(UnixSocketApi api, VmRecord record, CancellationToken ct)
    {
        try
        {
            var state = await StateAsync(api, ct);
            if (state is LiveState.Created or LiveState.Exited)
            {
                return false;
            }

            if (state == LiveState.Paused)
            {
                await ExpectSuccessAsync(api, HttpMethod.Put, "vm.resume", null, ct);
            }

            await ExpectSuccessAsync(api, HttpMethod.Put, "vm.power-button", null, ct);
            return true;
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException or DriverException)
        {
            LogStopStep(record.Uid, "vm.power-button", ex.Message);
            return false;
        }
    }

    /// <summary>Waits until the guest is off: the VMM exited (its default on guest power-off) or reports Shutdown.</summary>
    private async Task<bool> WaitForGuestOffAsync(UnixSocketApi api, VmRecord record, TimeSpan grace, CancellationToken ct)
    {
        var deadline = _time.GetUtcNow() + grace;
        while (_time.GetUtcNow() < deadline)
        {
            if (!HostProcess.IsAlive(record.Pid))
            {
                return true;
            }

            try
            {
                if (await StateAsync(api, ct) == LiveState.Exited)
                {
                    return true;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException or DriverException)
            {
                // the VMM is going away
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), _time, ct);
        }

        return !HostProcess.IsAlive(record.Pid);
    }

    private async Task KillAndClearAsync(VmDirectory dir, VmRecord? record, MicroVm vm, CancellationToken ct)
    {
        if (record is not null && VmDirectory.IsRecordedProcessAlive(record))
        {
            await HostProcess.KillAsync(record.Pid, _time, ct);
        }

        var socket = dir.File(ApiSocketName);
        VmDirectory.DeleteFile(socket);
        VmDirectory.DeleteFile(socket + ".lock");
        var taps = (record?.Taps ?? []).Concat(vm.Spec.Interfaces.Select((_, i) => TapDevices.TapName(vm.Uid, i))).Distinct(StringComparer.Ordinal);
        foreach (var tap in taps)
        {
            await TapDevices.DeleteAsync(tap, ct);
        }

        dir.DeleteRecord();
    }

    [LoggerMessage(3400, LogLevel.Information, "{Key}: cloud-hypervisor started (pid {Pid}, api {Socket})")]
    private partial void LogLaunched(string key, int pid, string socket);

    [LoggerMessage(3401, LogLevel.Warning, "{Key}: cloud-hypervisor start failed: {Message}")]
    private partial void LogStartFailed(string key, string message);

    [LoggerMessage(3402, LogLevel.Information, "{Key}: cloud-hypervisor pid {Pid} stopped: {How}")]
    private partial void LogStopped(string key, int pid, string how);

    [LoggerMessage(3403, LogLevel.Debug, "{Uid}: {Endpoint} while stopping: {Message}")]
    private partial void LogStopStep(string uid, string endpoint, string message);
}

using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging;

namespace Hypercore.Drivers.Unikernel;

/// <summary>
/// Runs unikernels through NanoVMs ops, onprem target. ops looks images up by name in $OPS_HOME/images, so the
/// driver links the spec's image there as hypercore-&lt;uid&gt;.img and creates the instance with the same name:
/// <c>ops instance create hypercore-&lt;uid&gt;.img -t onprem -i hypercore-&lt;uid&gt;</c>. ops starts QEMU in the
/// background and records the instance as $OPS_HOME/instances/&lt;pid&gt;; <c>ops instance list -t onprem --json</c>
/// reports it (ID = pid, Name, Image, Status) and <c>ops instance delete</c> kills it. ops offers no pause and no
/// graceful stop for onprem instances, so this path advertises neither.
/// </summary>
internal sealed class OpsBackend(UnikernelOptions options, TimeProvider time, ILogger log, Hypercore.HostAccess.HostPathPolicy? hostPaths) : IUnikernelBackend
{
    private const string Prefix = "hypercore-";

    public string Mode => "ops";

    public DriverCapabilities Capabilities => DriverCapabilities.None;

    private string OpsHome =>
        options.OpsHome.Length > 0 ? options.OpsHome
        : Environment.GetEnvironmentVariable("OPS_HOME") is { Length: > 0 } env ? env
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".ops");

    private Dictionary<string, string> OpsEnvironment => new() { ["OPS_HOME"] = OpsHome };

    public async Task<DriverAvailability> CheckAvailabilityAsync(CancellationToken ct)
    {
        try
        {
            var (ops, tried) = BinaryLocator.Resolve(options.OpsPath);
            if (ops is null)
            {
                return DriverAvailability.Unavailable(BinaryLocator.NotFoundMessage("ops", tried));
            }

            var version = await HostProcess.RunAsync(ops, ["version"], TimeSpan.FromSeconds(10), ct, OpsEnvironment);
            return version.Succeeded
                ? DriverAvailability.Ok($"{version.StandardOutput.Split('\n')[0].Trim()} ({ops}; OPS_HOME {OpsHome})")
                : DriverAvailability.Unavailable($"{ops} version failed: {version.Diagnostic}");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return DriverAvailability.Unavailable("ops availability check failed: " + ex.Message);
        }
    }

    public async Task<IReadOnlyList<VmRuntimeInfo>> ListAsync(CancellationToken ct)
    {
        IReadOnlyList<(string Name, int Pid)> instances;
        try
        {
            instances = await OpsListAsync(ct);
        }
        catch (DriverException ex)
        {
            // Adoption must not fail because ops did: fall back to what the driver recorded itself.
            UnikernelLog.StepFailed(log, "*", "ops instance list", ex.Message);
            instances = [.. VmDirectory.Scan(options.RuntimeDirectory).Select(r => (Prefix + r.Record.Uid, r.Record.Pid))];
        }

        var found = new List<VmRuntimeInfo>();
        foreach (var (name, pid) in instances)
        {
            if (!name.StartsWith(Prefix, StringComparison.Ordinal))
            {
                continue; // not ours
            }

            var record = Directory(name[Prefix.Length..]).ReadRecord();
            if (record is not null && record.Pid == pid && VmDirectory.IsRecordedProcessAlive(record))
            {
                found.Add(Info(record, LiveState.Running));
            }
        }

        return found;
    }

    public Task<VmRuntimeInfo> InspectAsync(MicroVm vm, CancellationToken ct)
    {
        var record = Directory(vm.Uid).ReadRecord();
        if (record is null)
        {
            return Task.FromResult(VmRuntimeInfo.NotFound(vm.Uid));
        }

        return Task.FromResult(VmDirectory.IsRecordedProcessAlive(record)
            ? Info(record, LiveState.Running)
            : Info(record, LiveState.Exited) with { Exit = ExitKind.Crashed, Pid = null, Detail = $"ops instance {record.Extra.GetValueOrDefault("instance")} (pid {record.Pid}) is gone" });
    }

    public async Task<VmRuntimeInfo> StartAsync(MicroVm vm, CancellationToken ct)
    {
        var dir = Directory(vm.Uid);
        if (dir.ReadRecord() is { } existing && VmDirectory.IsRecordedProcessAlive(existing))
        {
            return Info(existing, LiveState.Running);
        }

        await StopAsync(vm, TimeSpan.Zero, ct);
        hostPaths?.Check(vm.Spec, checkKernel: UnikernelImage.IsImage(vm.Spec.Kernel.Image));
        var image = UnikernelImage.Resolve(vm.Spec);
        if (image.ExtraDisks.Count > 0 || vm.Spec.Interfaces.Count > 0)
        {
            throw new DriverException(Conditions.ReasonUnsupported, "through ops this driver boots the image alone: extra volumes and interfaces need Unikernel:OpsPath unset (direct QEMU)");
        }

        var (ops, tried) = BinaryLocator.Resolve(options.OpsPath);
        if (ops is null)
        {
            throw new DriverException(Conditions.ReasonProviderUnavailable, BinaryLocator.NotFoundMessage("ops", tried));
        }

        var name = Prefix + vm.Uid;
        var images = Path.Combine(OpsHome, "images");
        System.IO.Directory.CreateDirectory(images);
        var link = Path.Combine(images, name + ".img");
        VmDirectory.DeleteFile(link);
        File.CreateSymbolicLink(link, Path.GetFullPath(image.BootDisk));

        var create = await HostProcess.RunAsync(ops, ["instance", "create", name + ".img", "-t", "onprem", "-i", name], options.StartTimeout, ct, OpsEnvironment);
        if (!create.Succeeded)
        {
            VmDirectory.DeleteFile(link);
            throw new DriverException("HypervisorError", $"ops instance create failed (exit {create.ExitCode}): {create.Diagnostic}");
        }

        var pid = (await OpsListAsync(ct)).Where(i => i.Name == name).Select(i => (int?)i.Pid).FirstOrDefault()
            ?? throw new DriverException("HypervisorError", $"ops instance create succeeded but \"ops instance list\" does not show {name}");
        dir.Create();
        var record = new VmRecord
        {
            Uid = vm.Uid,
            Provider = UnikernelDriver.ProviderName,
            Key = vm.Key.ToString(),
            Pid = pid,
            PidStartTicks = HostProcess.StartTicks(pid) ?? 0,
            ArgvMarker = link, // ops passes the image path to QEMU
            StartedAt = time.GetUtcNow(),
            Extra = new Dictionary<string, string> { ["mode"] = Mode, ["instance"] = name, ["image"] = image.BootDisk, ["ops_home"] = OpsHome },
        };
        dir.WriteRecord(record);
        UnikernelLog.Launched(log, vm.Key.ToString(), Mode, pid, image.BootDisk);
        return Info(record, LiveState.Running);
    }

    public Task PauseAsync(MicroVm vm, CancellationToken ct) => throw Unsupported("pause");

    public Task ResumeAsync(MicroVm vm, CancellationToken ct) => throw Unsupported("resume");

    /// <summary><c>ops instance delete</c> (it kills the QEMU); the grace period does not apply, ops has no graceful stop.</summary>
    public async Task StopAsync(MicroVm vm, TimeSpan gracePeriod, CancellationToken ct)
    {
        var dir = Directory(vm.Uid);
        var record = dir.ReadRecord();
        var name = Prefix + vm.Uid;
        // Decided before ops kills it: afterwards a dying QEMU may no longer match its record, and stop must not
        // return while it is still exiting.
        var running = record is not null && VmDirectory.IsRecordedProcessAlive(record);
        var listed = (await OpsListAsync(ct)).Any(i => i.Name == name);
        if (listed && BinaryLocator.Resolve(options.OpsPath).Path is { } ops)
        {
            var delete = await HostProcess.RunAsync(ops, ["instance", "delete", name, "-t", "onprem"], options.StartTimeout, ct, OpsEnvironment);
            if (!delete.Succeeded)
            {
                UnikernelLog.StepFailed(log, vm.Uid, "ops instance delete", delete.Diagnostic);
            }
        }

        if (running)
        {
            if (!await HostProcess.WaitForExitAsync(record!.Pid, TimeSpan.FromSeconds(5), time, ct))
            {
                await HostProcess.KillAsync(record.Pid, time, ct);
            }

            UnikernelLog.Stopped(log, vm.Key.ToString(), record.Pid, "ops instance delete");
        }

        VmDirectory.DeleteFile(Path.Combine(OpsHome, "images", name + ".img"));
        dir.DeleteRecord();
    }

    public async Task CleanupAsync(MicroVm vm, CancellationToken ct)
    {
        await StopAsync(vm, TimeSpan.Zero, ct);
        Directory(vm.Uid).Delete();
    }

    /// <summary>(Name, pid) of every instance <c>ops instance list -t onprem --json</c> reports.</summary>
    internal async Task<IReadOnlyList<(string Name, int Pid)>> OpsListAsync(CancellationToken ct)
    {
        var ops = BinaryLocator.Resolve(options.OpsPath).Path;
        if (ops is null)
        {
            return [];
        }

        var list = await HostProcess.RunAsync(ops, ["instance", "list", "-t", "onprem", "--json"], options.StartTimeout, ct, OpsEnvironment);
        if (!list.Succeeded)
        {
            throw new DriverException("HypervisorError", $"ops instance list failed (exit {list.ExitCode}): {list.Diagnostic}");
        }

        try
        {
            // ops prints a JSON array of lepton.CloudInstance ({"ID": "<pid>", "Name", "Image", "Status", ...}), or null.
            return JsonNode.Parse(list.StandardOutput) is JsonArray items
                ? [.. items.OfType<JsonObject>()
                    .Select(i => (Name: i["Name"]?.GetValue<string>() ?? "", Id: i["ID"]?.GetValue<string>() ?? ""))
                    .Where(i => int.TryParse(i.Id, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                    .Select(i => (i.Name, int.Parse(i.Id, CultureInfo.InvariantCulture)))]
                : [];
        }
        catch (JsonException ex)
        {
            throw new DriverException("HypervisorError", $"ops instance list printed something that is not JSON: {ex.Message}", ex);
        }
    }

    private VmDirectory Directory(string uid) => new(options.RuntimeDirectory, uid);

    private static VmRuntimeInfo Info(VmRecord record, LiveState state) => new()
    {
        Uid = record.Uid,
        State = state,
        Pid = record.Pid,
        BootTime = record.StartedAt,
        Detail = $"unikernel via ops (instance {record.Extra.GetValueOrDefault("instance")}): {record.Extra.GetValueOrDefault("image")}",
    };

    private static DriverException Unsupported(string what) =>
        new(Conditions.ReasonUnsupported, $"ops cannot {what} an onprem instance; leave Unikernel:OpsPath empty to boot images with QEMU directly");
}

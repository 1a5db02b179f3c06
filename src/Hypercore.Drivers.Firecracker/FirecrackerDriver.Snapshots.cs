using System.Text.Json.Nodes;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Hypercore.Snapshots;

namespace Hypercore.Drivers.Firecracker;

/// <summary>
/// Snapshots through the swagger's calls: PATCH /vm Paused, PUT /snapshot/create {snapshot_type Full, snapshot_path,
/// mem_file_path}, PATCH /vm Resumed; restore on a fresh process with PUT /snapshot/load {snapshot_path, mem_backend
/// {backend_type File, backend_path}, resume_vm, network_overrides} in place of the boot calls. Firecracker reopens
/// drives at the paths saved in its state file and has no override for them, so a VM with writable volumes is not
/// restorable (its disk copy could not be put in their place): refused before anything starts.
/// </summary>
public sealed partial class FirecrackerDriver : ISnapshotDriver
{
    private const string StateFile = "vmstate";
    private const string MemoryFile = "memory";

    public Task<SnapshotTaken> SnapshotAsync(MicroVm vm, string directory, CancellationToken cancellationToken = default) =>
        SnapshotLockedAsync(vm, directory, async (record, dir, ct) =>
        {
            if (record.Extra.ContainsKey("jail"))
            {
                throw new DriverException(Conditions.ReasonUnsupported, "snapshots of jailed VMs are written inside the jail; not supported by this driver");
            }

            using var api = Api(record);
            var version = (await api.ExpectSuccessAsync(HttpMethod.Get, "/version", null, r => Fault(HttpMethod.Get, "/version", r), ct))
                .Json?["firecracker_version"]?.GetValue<string>() ?? "";
            var wasRunning = await StateAsync(api, ct) == LiveState.Running;
            if (wasRunning)
            {
                await PutVmStateAsync(api, "Paused", ct);
            }

            try
            {
                await PutAsync(api, "/snapshot/create", new JsonObject
                {
                    ["snapshot_type"] = "Full",
                    ["snapshot_path"] = Path.Combine(directory, StateFile),
                    ["mem_file_path"] = Path.Combine(directory, MemoryFile),
                }, ct);
                var disks = await CopyWritableDisksAsync(record, directory, ct);
                return new SnapshotTaken
                {
                    HypervisorVersion = version,
                    Machine = "firecracker",
                    WasRunning = wasRunning,
                    StateFiles = [StateFile, MemoryFile],
                    Disks = disks,
                };
            }
            finally
            {
                if (wasRunning)
                {
                    await PutVmStateAsync(api, "Resumed", CancellationToken.None);
                }
            }
        }, cancellationToken);

    public async Task<string?> CheckRestorableAsync(SnapshotManifest manifest, CancellationToken cancellationToken = default)
    {
        if (manifest.Disks.Count > 0)
        {
            return $"snapshot \"{manifest.Name}\" has writable volumes ({string.Join(", ", manifest.Disks.Select(d => d.VolumeId))}); firecracker reopens drives at the paths saved in the snapshot and cannot take a copy in their place";
        }

        if (Options.Jailer.Enabled)
        {
            return "restoring snapshots of jailed firecracker VMs is not supported by this driver";
        }

        var installed = await InstalledVersionAsync(cancellationToken);
        return installed is not null && installed.Contains("v" + manifest.HypervisorVersion, StringComparison.Ordinal)
            ? null
            : $"snapshot \"{manifest.Name}\" was taken with Firecracker {manifest.HypervisorVersion}; this node has {installed?.Trim() ?? "no runnable firecracker"}: take a new snapshot here";
    }

    private async Task LoadSnapshotAsync(UnixSocketApi api, PreparedSpec prepared, SnapshotRestore restore, CancellationToken ct)
    {
        var overrides = new JsonArray();
        foreach (var nic in prepared.Nics)
        {
            // The taps are this VM's own; the snapshot names the source's.
            overrides.Add((JsonNode)new JsonObject { ["iface_id"] = nic.DeviceId, ["host_dev_name"] = nic.Tap }); // not Add<T>: no reflection
        }

        var load = new JsonObject
        {
            ["snapshot_path"] = restore.PathOf(StateFile),
            ["mem_backend"] = new JsonObject { ["backend_type"] = "File", ["backend_path"] = restore.PathOf(MemoryFile) },
            ["resume_vm"] = prepared.Spec.State != DesiredState.Paused,
        };
        if (overrides.Count > 0)
        {
            load["network_overrides"] = overrides;
        }

        try
        {
            await PutAsync(api, "/snapshot/load", load, ct);
        }
        catch (DriverException ex) when (ex.Reason == "HypervisorError")
        {
            throw new DriverException("SnapshotRestoreFailed", $"could not load snapshot \"{restore.Manifest.Name}\": {ex.Message}", ex);
        }
    }
}

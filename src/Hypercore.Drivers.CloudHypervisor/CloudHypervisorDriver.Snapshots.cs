using System.Text.Json.Nodes;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Hypercore.Snapshots;

namespace Hypercore.Drivers.CloudHypervisor;

/// <summary>
/// Snapshots through the OpenAPI's calls: vm.pause, vm.snapshot {destination_url: file://dir} (config.json,
/// state.json, memory-ranges), vm.resume; restore on a fresh VMM with vm.restore {source_url: file://dir} (the VM
/// comes back Paused) and vm.resume. Cloud Hypervisor restores devices from the saved config.json: disks at their
/// saved paths, taps by their saved names, the serial console into the saved file. So a snapshot with writable
/// volumes or interfaces is refused before anything starts, and a restored VM's console goes to the file named in
/// the snapshot (the source's console.log), not to its own.
/// </summary>
public sealed partial class CloudHypervisorDriver : ISnapshotDriver
{
    public Task<SnapshotTaken> SnapshotAsync(MicroVm vm, string directory, CancellationToken cancellationToken = default) =>
        SnapshotLockedAsync(vm, directory, async (record, dir, ct) =>
        {
            using var api = Api(record);
            var ping = await api.ExpectSuccessAsync(HttpMethod.Get, ApiPrefix + "vmm.ping", null, r => Error(HttpMethod.Get, "vmm.ping", r), ct);
            var version = ping.Json?["version"]?.GetValue<string>() ?? "";
            var wasRunning = await StateAsync(api, ct) == LiveState.Running;
            if (wasRunning)
            {
                await PutAsync(api, "vm.pause", null, ct);
            }

            try
            {
                await PutAsync(api, "vm.snapshot", new JsonObject { ["destination_url"] = "file://" + Path.GetFullPath(directory) }, ct);
                var disks = await CopyWritableDisksAsync(record, directory, ct);
                var written = System.IO.Directory.EnumerateFiles(directory).Select(Path.GetFileName).OfType<string>()
                    .Where(n => !n.StartsWith("disk-", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
                return new SnapshotTaken
                {
                    HypervisorVersion = version,
                    Machine = "cloud-hypervisor",
                    WasRunning = wasRunning,
                    StateFiles = written,
                    Disks = disks,
                };
            }
            finally
            {
                if (wasRunning)
                {
                    await PutAsync(api, "vm.resume", null, CancellationToken.None);
                }
            }
        }, cancellationToken);

    public async Task<string?> CheckRestorableAsync(SnapshotManifest manifest, CancellationToken cancellationToken = default)
    {
        if (manifest.Disks.Count > 0)
        {
            return $"snapshot \"{manifest.Name}\" has writable volumes ({string.Join(", ", manifest.Disks.Select(d => d.VolumeId))}); cloud-hypervisor reopens disks at the paths saved in the snapshot and cannot take a copy in their place";
        }

        if (manifest.Spec.Interfaces.Count > 0)
        {
            return $"snapshot \"{manifest.Name}\" has network interfaces; cloud-hypervisor reopens the source's taps by name on restore";
        }

        var installed = await InstalledVersionAsync(cancellationToken);
        return installed is not null && installed.Contains(manifest.HypervisorVersion, StringComparison.Ordinal)
            ? null
            : $"snapshot \"{manifest.Name}\" was taken with cloud-hypervisor {manifest.HypervisorVersion}; this node has {installed?.Trim() ?? "no runnable cloud-hypervisor"}: take a new snapshot here";
    }

    private static async Task RestoreAsync(UnixSocketApi api, PreparedSpec prepared, SnapshotRestore restore, CancellationToken ct)
    {
        try
        {
            await PutAsync(api, "vm.restore", new JsonObject { ["source_url"] = "file://" + restore.Directory, ["prefault"] = false }, ct);
        }
        catch (DriverException ex) when (ex.Reason == "HypervisorError")
        {
            throw new DriverException("SnapshotRestoreFailed", $"could not restore snapshot \"{restore.Manifest.Name}\": {ex.Message}", ex);
        }

        if (prepared.Spec.State != DesiredState.Paused)
        {
            await PutAsync(api, "vm.resume", null, ct);
        }
    }
}

using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Snapshots;

namespace Hypercore.Drivers.Vmm;

/// <summary>
/// What every snapshotting hypervisor shares: the per-VM lock around taking a snapshot (so the reconciler cannot
/// resume a VM paused for its snapshot, nor inspect it halfway), copy-on-write copies of the writable disks, and on
/// restore fresh copies of the saved disks in the VM directory in place of the spec's volumes.
/// </summary>
public abstract partial class VmmDriver
{
    private const string DiskKeyPrefix = "disk:";

    /// <summary>The snapshot to start from, when the reconciler's snapshot step put one in the context.</summary>
    protected static SnapshotRestore? RestoreOf(StartContext? context) =>
        context is not null && context.Items.TryGetValue(SnapshotRestore.ItemKey, out var item) ? item as SnapshotRestore : null;

    /// <summary>
    /// Runs <paramref name="take"/> on the live VM under its lock. No live process is DriverException NotRunning;
    /// a transport failure is HypervisorError.
    /// </summary>
    protected async Task<SnapshotTaken> SnapshotLockedAsync(
        MicroVm vm, string directory, Func<VmRecord, VmDirectory, CancellationToken, Task<SnapshotTaken>> take, CancellationToken ct)
    {
        var dir = Directory(vm.Uid);
        using var held = await LockAsync(vm.Uid, ct);
        var record = dir.ReadRecord() is { } r && VmDirectory.IsRecordedProcessAlive(r)
            ? r
            : throw new DriverException("NotRunning", $"snapshot: no {BinaryLabel} process is running for {vm.Key}");
        var state = await QueryAsync(record, ct);
        if (state.State is not (LiveState.Running or LiveState.Paused))
        {
            throw new DriverException("NotRunning", $"snapshot: {vm.Key} is {state.State}{(state.Detail is null ? "" : $" ({state.Detail})")}; only a running or paused VM can be snapshotted");
        }

        try
        {
            return await take(record, dir, ct);
        }
        catch (Exception ex) when (IsTransient(ex) && ex is not DriverException)
        {
            throw new DriverException("HypervisorError", $"snapshot of {vm.Key}: {ex.Message}", ex);
        }
    }

    /// <summary>The writable disks of a running VM (recorded at start), by volume id.</summary>
    protected static IReadOnlyList<(string VolumeId, string Path)> WritableDisks(VmRecord record) =>
        record.Extra.Where(kv => kv.Key.StartsWith(DiskKeyPrefix, StringComparison.Ordinal))
            .Select(kv => (kv.Key[DiskKeyPrefix.Length..], kv.Value)).OrderBy(d => d.Item1, StringComparer.Ordinal).ToList();

    /// <summary>
    /// Copies every writable disk of the (paused, flushed) VM into <paramref name="directory"/>: a reflink where the
    /// file system can, else a sparse copy, so an idle scratch disk costs nothing.
    /// </summary>
    protected static async Task<IReadOnlyList<SnapshotDisk>> CopyWritableDisksAsync(VmRecord record, string directory, CancellationToken ct)
    {
        var disks = new List<SnapshotDisk>();
        foreach (var (id, path) in WritableDisks(record))
        {
            var name = $"disk-{SafeFileName(id)}{(path.EndsWith(".qcow2", StringComparison.OrdinalIgnoreCase) ? ".qcow2" : ".img")}";
            await CopyFileAsync(path, Path.Combine(directory, name), ct);
            disks.Add(new SnapshotDisk(id, name));
        }

        return disks;
    }

    /// <summary>cp --reflink=auto --sparse=always: copy-on-write where the file system allows, sparse otherwise.</summary>
    protected static async Task CopyFileAsync(string source, string target, CancellationToken ct)
    {
        var cp = await HostProcess.RunAsync("cp", ["--reflink=auto", "--sparse=always", "--", source, target], TimeSpan.FromMinutes(30), ct);
        if (!cp.Succeeded)
        {
            throw new DriverException("HypervisorError", $"copying {source} to {target} failed: {cp.Diagnostic}");
        }
    }

    /// <summary>The installed binary's --version output (cached), or null when it is missing or does not run.</summary>
    protected async Task<string?> InstalledVersionAsync(CancellationToken ct)
    {
        var (path, _, modified) = ResolveBinary();
        return path is null ? null : await _version.GetAsync(path, modified, ct);
    }

    private static SnapshotDisk? SavedDisk(SnapshotRestore? restore, VolumeSpec volume) =>
        restore is null || volume.IsReadOnly ? null : restore.Manifest.Disks.FirstOrDefault(d => d.VolumeId == volume.Id);

    /// <summary>A fresh copy for every start: the saved memory belongs with the saved disk, never with a later one.</summary>
    private static async Task<string> RestoreDiskAsync(SnapshotRestore restore, SnapshotDisk saved, VmDirectory dir, CancellationToken ct)
    {
        var target = dir.File("restored-" + saved.File);
        VmDirectory.DeleteFile(target);
        await CopyFileAsync(restore.PathOf(saved.File), target, ct);
        return target;
    }

    private static IReadOnlyDictionary<string, string> WithWritableDisks(IReadOnlyDictionary<string, string> extra, PreparedSpec prepared)
    {
        var all = new Dictionary<string, string>(extra, StringComparer.Ordinal);
        foreach (var v in prepared.Volumes.Where(v => !v.IsReadOnly))
        {
            all[DiskKeyPrefix + v.Id] = v.HostPath;
        }

        return all;
    }

    private static string SafeFileName(string id) =>
        new(id.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray());
}

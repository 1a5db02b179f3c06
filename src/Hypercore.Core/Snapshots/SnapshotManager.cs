using System.Diagnostics;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Operations;
using Microsoft.Extensions.Logging;

namespace Hypercore.Snapshots;

/// <summary>
/// Takes, lists and deletes snapshots on this node. The caller (the API) has found the VM and checked the
/// caller's rights; this class checks the VM's state and provider, has the driver write the files into a staging
/// directory, and commits them with a manifest. A failed snapshot leaves no files behind.
/// </summary>
/// <param name="vms">When given, a taken snapshot is recorded in its VM's status (lastSnapshot, lastSnapshotTime).</param>
public sealed partial class SnapshotManager(
    SnapshotStore store, DriverRegistry drivers, TimeProvider time, ILogger<SnapshotManager> log, Hypercore.Store.IMicroVmStore? vms = null)
{
    private readonly HashSet<string> _busy = new(StringComparer.Ordinal);

    public SnapshotStore Store => store;

    /// <param name="owner">The owning object's uid (a MicroVMSnapshot), kept in the manifest; only it may delete the snapshot.</param>
    public async Task<SnapshotManifest> CreateAsync(MicroVm vm, string name, CancellationToken ct, string? owner = null)
    {
        if (SnapshotStore.NameProblem(name) is { } bad)
        {
            throw new InvalidRequestException(bad);
        }

        if (vm.IsDeleting)
        {
            throw new FailedPreconditionException($"microvm {vm.Key} is being deleted");
        }

        if (ProviderProblem(vm) is { } unsupported)
        {
            throw new FailedPreconditionException(unsupported);
        }

        var provider = drivers.Resolve(vm.Spec.Provider);
        drivers.TryGet(provider, out var driver);
        var snapshots = (ISnapshotDriver)SnapshotRestoreStep.Unwrap(driver!);

        if (vm.Status.Phase is not (Phase.Running or Phase.Paused))
        {
            throw new FailedPreconditionException($"microvm {vm.Key} is {vm.Status.Phase}: only a running or paused VM can be snapshotted; start it first");
        }

        lock (_busy)
        {
            if (store.Exists(name) || !_busy.Add(name))
            {
                throw new SnapshotExistsException($"snapshot \"{name}\" already exists; delete it first or choose another name");
            }
        }

        var staging = store.BeginWrite(name);
        try
        {
            var started = Stopwatch.GetTimestamp();
            SnapshotTaken taken;
            try
            {
                taken = await snapshots.SnapshotAsync(vm, staging, ct);
            }
            catch (DriverException ex) when (ex.Reason == "NotRunning")
            {
                throw new FailedPreconditionException($"microvm {vm.Key}: {ex.Message}");
            }
            catch (DriverException ex)
            {
                throw new SnapshotFailedException($"snapshot of microvm {vm.Key} failed: {ex.Message}", ex);
            }

            var (files, allocated) = SnapshotStore.Describe(staging, taken.StateFiles);
            var manifest = new SnapshotManifest
            {
                Name = name,
                Namespace = vm.Spec.Namespace,
                SourceId = vm.Spec.Id,
                SourceUid = vm.Uid,
                Provider = provider,
                HypervisorVersion = taken.HypervisorVersion,
                Machine = taken.Machine,
                Spec = vm.Spec with { RestoreFrom = null },
                CreatedAt = time.GetUtcNow(),
                WasRunning = taken.WasRunning,
                DurationSeconds = Math.Round(Stopwatch.GetElapsedTime(started).TotalSeconds, 3),
                Files = files,
                Disks = taken.Disks,
                SizeBytes = allocated,
                Owner = owner,
            };
            if (!store.Commit(staging, manifest))
            {
                throw new SnapshotExistsException($"snapshot \"{name}\" already exists; delete it first or choose another name");
            }

            LogTaken(vm.Key.ToString(), name, manifest.SizeBytes, manifest.DurationSeconds);
            await RecordAsync(vm, manifest, ct);
            return manifest;
        }
        catch
        {
            SnapshotStore.Discard(staging);
            throw;
        }
        finally
        {
            lock (_busy)
            {
                _busy.Remove(name);
            }
        }
    }

    /// <summary>Why this node cannot snapshot VMs of <paramref name="vm"/>'s provider, or null when it can.</summary>
    public string? ProviderProblem(MicroVm vm)
    {
        var provider = drivers.Resolve(vm.Spec.Provider);
        return drivers.TryGet(provider, out var driver) && driver.Capabilities.HasFlag(DriverCapabilities.Snapshot) &&
               SnapshotRestoreStep.Unwrap(driver) is ISnapshotDriver
            ? null
            : $"provider \"{provider}\" of microvm {vm.Key} cannot take snapshots on this node";
    }

    /// <summary>Snapshots in the namespaces <paramref name="visible"/> accepts, by name.</summary>
    public IReadOnlyList<SnapshotManifest> List(Func<string, bool> visible) =>
        store.List().Where(m => visible(m.Namespace)).ToList();

    /// <summary>The snapshot, or NotFound (also when <paramref name="visible"/> refuses its namespace: its existence does not leak).</summary>
    public SnapshotManifest Get(string name, Func<string, bool> visible)
    {
        if (SnapshotStore.NameProblem(name) is { } bad)
        {
            throw new InvalidRequestException(bad);
        }

        return store.Read(name) is { } m && visible(m.Namespace)
            ? m
            : throw new SnapshotNotFoundException($"snapshot \"{name}\" not found; `vis snapshot ls` lists the snapshots");
    }

    /// <summary>
    /// Removes the snapshot and its files. VMs restored from it keep running; they cannot restart from it. A snapshot
    /// with an <see cref="SnapshotManifest.Owner"/> is deleted only by that owner (<paramref name="owner"/>), so that a
    /// MicroVMSnapshot never shows Ready for files someone removed underneath it.
    /// </summary>
    public void Delete(SnapshotManifest manifest, string? owner = null)
    {
        if (manifest.Owner is { } owning && owning != owner)
        {
            throw new FailedPreconditionException(
                $"snapshot \"{manifest.Name}\" belongs to the Kubernetes MicroVMSnapshot \"{manifest.Name}\" in namespace \"{manifest.Namespace}\" (uid {owning}); " +
                $"delete that instead: kubectl delete microvmsnapshot {manifest.Name} -n {manifest.Namespace}");
        }

        lock (_busy)
        {
            if (!_busy.Add(manifest.Name))
            {
                throw new FailedPreconditionException($"snapshot \"{manifest.Name}\" is being taken; delete it when that has finished");
            }
        }

        try
        {
            if (!store.Delete(manifest.Name))
            {
                throw new SnapshotNotFoundException($"snapshot \"{manifest.Name}\" not found");
            }

            LogDeleted(manifest.Name, manifest.SizeBytes);
        }
        finally
        {
            lock (_busy)
            {
                _busy.Remove(manifest.Name);
            }
        }
    }

    /// <summary>lastSnapshot/lastSnapshotTime on the VM; best effort (the snapshot is taken whatever happens here).</summary>
    private async Task RecordAsync(MicroVm vm, SnapshotManifest manifest, CancellationToken ct)
    {
        if (vms is null)
        {
            return;
        }

        try
        {
            // The reconciler writes the same status: re-read on a conflict, as it does.
            for (var attempt = 1; attempt <= 5; attempt++)
            {
                var current = await vms.GetAsync(vm.Key, ct);
                if (current is null || current.Uid != vm.Uid)
                {
                    return;
                }

                try
                {
                    await vms.UpdateStatusAsync(vm.Key, current.Status with { LastSnapshot = manifest.Name, LastSnapshotTime = manifest.CreatedAt }, current.ResourceVersion, ct);
                    return;
                }
                catch (Hypercore.Store.ConflictException) when (attempt < 5)
                {
                }
            }
        }
        catch (Hypercore.Store.StoreException ex)
        {
            LogNotRecorded(vm.Key.ToString(), manifest.Name, ex.Message);
        }
    }

    [LoggerMessage(1163, LogLevel.Warning, "{Key}: snapshot {Snapshot} taken, but not recorded in the VM's status: {Message}")]
    private partial void LogNotRecorded(string key, string snapshot, string message);

    [LoggerMessage(1160, LogLevel.Information, "{Key}: snapshot {Snapshot} taken ({Bytes} bytes in {Seconds} s)")]
    private partial void LogTaken(string key, string snapshot, long bytes, double seconds);

    [LoggerMessage(1161, LogLevel.Information, "snapshot {Snapshot} deleted ({Bytes} bytes freed)")]
    private partial void LogDeleted(string snapshot, long bytes);
}

using System.Net.Sockets;
using System.Text.Json.Nodes;
using Hypercore.Drivers.Vmm;
using Hypercore.Drivers.Vmm.Qmp;
using Hypercore.HostAccess;
using Hypercore.MicroVms;
using Hypercore.Snapshots;
using Microsoft.Extensions.Logging;

namespace Hypercore.Drivers.Qemu;

/// <summary>
/// Snapshots with QMP migration. QEMU 7.2 has no <c>file:</c> migration URI and the sandbox (spawn=deny) rules out
/// <c>exec:</c>, so the state goes over a Unix socket the daemon owns: for a snapshot QEMU connects to it
/// (<c>migrate unix:…</c>) and the daemon writes what arrives into the state file; for a restore QEMU starts with
/// <c>-incoming defer</c>, listens (<c>migrate-incoming unix:…</c>) and the daemon streams the file into it. The VM is
/// paused (<c>stop</c>) before the migration, so the saved memory and the disk copies taken after it agree.
/// </summary>
public sealed partial class QemuDriver : ISnapshotDriver
{
    public const string StateFile = "memory.state";
    private const string AccelKey = "accel";
    private static readonly TimeSpan MigratePoll = TimeSpan.FromMilliseconds(50);

    public Task<SnapshotTaken> SnapshotAsync(MicroVm vm, string directory, CancellationToken cancellationToken = default) =>
        SnapshotLockedAsync(vm, directory, async (record, dir, ct) =>
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(_options.SnapshotTimeout);
            await using var qmp = await _qmp.ConnectAsync(record.ControlSocket, limit.Token);
            var wasRunning = await qmp.QueryStatusAsync(limit.Token) == "running";
            if (wasRunning)
            {
                await qmp.ExecuteAsync("stop", null, limit.Token);
            }

            try
            {
                await SaveStateAsync(qmp, record, dir, Path.Combine(directory, StateFile), limit.Token);
                var disks = await CopyWritableDisksAsync(record, directory, limit.Token);
                return new SnapshotTaken
                {
                    HypervisorVersion = qmp.Version,
                    Machine = $"microvm accel={Accel(record)}",
                    WasRunning = wasRunning,
                    StateFiles = [StateFile],
                    Disks = disks,
                };
            }
            finally
            {
                if (wasRunning)
                {
                    // Running again whatever happened: a failed snapshot must not leave the guest stopped.
                    await qmp.ExecuteAsync("cont", null, CancellationToken.None);
                }
            }
        }, cancellationToken);

    public async Task<string?> CheckRestorableAsync(SnapshotManifest manifest, CancellationToken cancellationToken = default)
    {
        var installed = await InstalledVersionAsync(cancellationToken);
        var number = installed is not null && VersionPattern().Match(installed) is { Success: true } m ? m.Groups[1].Value : null;
        if (number is null)
        {
            return $"cannot tell the version of {_options.BinaryPath} on this node";
        }

        // QEMU loads migration streams from other versions only with matching machine versions; microvm has none, so
        // the snapshot must come from the very same QEMU.
        return number == manifest.HypervisorVersion
            ? null
            : $"snapshot \"{manifest.Name}\" was taken with QEMU {manifest.HypervisorVersion}; this node has QEMU {number}: take a new snapshot with this QEMU";
    }

    private static string Accel(VmRecord record) => record.Extra.TryGetValue(AccelKey, out var a) ? a : "unknown";

    private static IReadOnlyList<string> WithIncoming(IReadOnlyList<string> arguments, PreparedSpec prepared, AcceleratorChoice accel)
    {
        if (RestoreOf(prepared.Context) is not { } restore)
        {
            return arguments;
        }

        var wanted = $"microvm accel={accel.Accel}";
        if (restore.Manifest.Machine != wanted)
        {
            // TCG's cpu "max" and KVM's "host" differ: the state would not load, or load into another CPU.
            throw new DriverException(SnapshotRestoreStep.ReasonIncompatible,
                $"snapshot \"{restore.Manifest.Name}\" was taken on \"{restore.Manifest.Machine}\"; this VM would run \"{wanted}\": use the same accelerator (Qemu:Accelerator)");
        }

        return [.. arguments, "-incoming", "defer"];
    }

    /// <summary>migrate to a socket the daemon listens on, copying the stream into <paramref name="statePath"/>.</summary>
    private async Task SaveStateAsync(QmpClient qmp, VmRecord record, VmDirectory dir, string statePath, CancellationToken ct)
    {
        var socketPath = dir.File("snapshot.sock");
        VmDirectory.DeleteFile(socketPath);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);
        try
        {
            if (_runAs is { } user)
            {
                Chown(user.Uid, user.Gid, socketPath); // QEMU, as that user, connects to it
            }

            using var copyCancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var copy = ReceiveAsync(listener, statePath, copyCancel.Token);
            await qmp.ExecuteAsync("migrate", new JsonObject { ["uri"] = $"unix:{socketPath}" }, ct);
            var (status, error) = await WaitMigrationAsync(qmp, ct);
            if (status != "completed")
            {
                await copyCancel.CancelAsync();
                await Task.WhenAny(copy);
                throw new DriverException("HypervisorError", $"QEMU could not save the VM state: migration {status}{(error is null ? "" : ": " + error)}");
            }

            var bytes = await copy;
            LogStateSaved(Log, record.Key, bytes, statePath);
        }
        finally
        {
            VmDirectory.DeleteFile(socketPath);
        }
    }

    private static async Task<long> ReceiveAsync(Socket listener, string path, CancellationToken ct)
    {
        using var connection = await listener.AcceptAsync(ct);
        await using var network = new NetworkStream(connection, ownsSocket: false);
        await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        await network.CopyToAsync(file, 1 << 20, ct);
        await file.FlushAsync(ct);
        file.Flush(flushToDisk: true);
        return file.Length;
    }

    /// <summary>Polls query-migrate until the migration ends: "completed", "failed" or "cancelled", with QEMU's error text.</summary>
    private async Task<(string Status, string? Error)> WaitMigrationAsync(QmpClient qmp, CancellationToken ct)
    {
        while (true)
        {
            var info = await qmp.ExecuteAsync("query-migrate", null, ct);
            var status = info?["status"]?.GetValue<string>() ?? "none";
            if (status is "completed" or "failed" or "cancelled")
            {
                return (status, info?["error-desc"]?.GetValue<string>());
            }

            await Task.Delay(MigratePoll, Time, ct);
        }
    }

    /// <summary>Feeds the saved state into a QEMU started with -incoming defer, then resumes it unless it should stay paused.</summary>
    private async Task IncomingAsync(VmRecord record, VmDirectory dir, SnapshotRestore restore, bool resume, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(_options.SnapshotTimeout);
        var socketPath = Path.Combine(Path.GetDirectoryName(record.ControlSocket) ?? dir.Path, "restore.sock"); // QEMU binds it: beside its QMP socket
        VmDirectory.DeleteFile(socketPath);
        var log = dir.File("qemu.log");
        try
        {
            await using var qmp = await _qmp.ConnectAsync(record.ControlSocket, limit.Token);
            await qmp.ExecuteAsync("migrate-incoming", new JsonObject { ["uri"] = $"unix:{socketPath}" }, limit.Token);
            using (var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                await VmmSocket.ConnectAsync(socket, socketPath, limit.Token); // QEMU's, in vmm/ with qemu-user: never through a link
                await using var network = new NetworkStream(socket, ownsSocket: false);
                await using var file = new FileStream(restore.PathOf(StateFile), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
                await file.CopyToAsync(network, 1 << 20, limit.Token);
                socket.Shutdown(SocketShutdown.Send);
            }

            var (status, error) = await WaitMigrationAsync(qmp, limit.Token);
            if (status != "completed")
            {
                throw new DriverException("SnapshotRestoreFailed", $"QEMU could not load snapshot \"{restore.Manifest.Name}\": migration {status}{(error is null ? "" : ": " + error)}");
            }

            if (resume)
            {
                await qmp.ExecuteAsync("cont", null, limit.Token);
            }

            LogRestored(Log, record.Key, restore.Manifest.Name);
        }
        catch (Exception ex) when (ex is QmpException or IOException or SocketException && !HostProcess.IsAlive(record.Pid))
        {
            // QEMU 7.2 exits when an incoming stream does not load; its log says why.
            throw new DriverException("SnapshotRestoreFailed", $"QEMU could not load snapshot \"{restore.Manifest.Name}\" and exited: {VmmOutput.Tail(log)}", ex);
        }
        finally
        {
            VmDirectory.DeleteFile(socketPath);
        }
    }

    [LoggerMessage(1170, LogLevel.Information, "{Key}: VM state saved ({Bytes} bytes) to {Path}")]
    private static partial void LogStateSaved(ILogger log, string key, long bytes, string path);

    [LoggerMessage(1171, LogLevel.Information, "{Key}: restored from snapshot {Snapshot}")]
    private static partial void LogRestored(ILogger log, string key, string snapshot);
}

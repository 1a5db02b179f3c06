using System.Collections.Concurrent;
using System.Net.Sockets;

namespace Hypercore.Drivers.Vmm.Qmp;

/// <summary>
/// Issue 15 (idle cost of running VMs): one QMP session per running VM, kept open for its status polls on a monitor
/// socket of its own (QEMU serves several <c>-qmp</c> monitors, one client each). A poll is then one query-status on an
/// open connection instead of connect, greeting, qmp_capabilities and query-status on a new one, every ~2 s per VM.
/// The VM's main QMP socket stays free for the driver's control sessions and for an operator's own tools.
/// A session belongs to one process (pid): a new process for the same VM gets a new session; a session that failed
/// (timeout, lost) is closed, and the next poll opens another, so a hung QEMU is reported exactly as before.
/// </summary>
public sealed class QmpStatusSessions(TimeProvider time, TimeSpan commandTimeout) : IDisposable
{
    private readonly ConcurrentDictionary<string, Session> _byUid = new(StringComparer.Ordinal);
    private bool _disposed;

    /// <summary>Sessions open now (tests, metrics).</summary>
    public int Count => _byUid.Count(s => s.Value.Client is not null);

    /// <summary>
    /// query-status over the VM's kept session, opened on <paramref name="socket"/> when there is none; null when the
    /// process has no such socket (started before the status monitor existed: the caller opens a session of its own).
    /// </summary>
    /// <exception cref="QmpException">no answer in time, or the connection was lost (after one fresh attempt).</exception>
    public async Task<string?> StatusAsync(string uid, int pid, string socket, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var session = _byUid.GetOrAdd(uid, _ => new Session());
        await session.Gate.WaitAsync(ct);
        while (session.Forgotten)
        {
            // Forgotten while this call waited for it: a session opened on it now would never be closed.
            session.Gate.Release();
            session = _byUid.GetOrAdd(uid, _ => new Session());
            await session.Gate.WaitAsync(ct);
        }

        try
        {
            if (session.Client is not null && session.Pid != pid)
            {
                await session.CloseAsync(); // a session of the VM's previous process
            }

            var kept = session.Client is not null;
            if (!kept && !File.Exists(socket))
            {
                return null;
            }

            try
            {
                return await QueryAsync(session, pid, socket, ct);
            }
            catch (QmpException ex) when (kept && ex.ErrorClass == "Disconnected")
            {
                // QEMU dropped the kept connection (e.g. the monitor was reset): one fresh session, as a poll did before.
                return await QueryAsync(session, pid, socket, ct);
            }
        }
        finally
        {
            session.Gate.Release();
        }
    }

    /// <summary>Closes the VM's session (stopped, deleted, or its process ended).</summary>
    public void Forget(string uid)
    {
        if (_byUid.TryRemove(uid, out var session))
        {
            session.Forgotten = true;
            _ = CloseLaterAsync(session);
        }
    }

    public void Dispose()
    {
        _disposed = true;
        foreach (var uid in _byUid.Keys)
        {
            Forget(uid);
        }
    }

    private async Task<string> QueryAsync(Session session, int pid, string socket, CancellationToken ct)
    {
        try
        {
            if (session.Client is null)
            {
                session.Client = await QmpClient.ConnectAsync(socket, time, commandTimeout, ct);
                session.Pid = pid;
            }

            return await session.Client.QueryStatusAsync(ct);
        }
        catch (Exception ex) when (ex is QmpException or SocketException or IOException or OperationCanceledException)
        {
            // A reply may still be on its way, or the connection is gone: never reuse it.
            await session.CloseAsync();
            throw;
        }
    }

    /// <summary>After any poll under way on it has finished, so a client is never disposed while in use.</summary>
    private static async Task CloseLaterAsync(Session session)
    {
        await session.Gate.WaitAsync();
        try
        {
            await session.CloseAsync();
        }
        finally
        {
            session.Gate.Release();
        }
    }

    private sealed class Session
    {
        public SemaphoreSlim Gate { get; } = new(1, 1);

        public QmpClient? Client { get; set; }

        public int Pid { get; set; }

        public volatile bool Forgotten;

        public async Task CloseAsync()
        {
            if (Client is { } client)
            {
                Client = null;
                await client.DisposeAsync();
            }
        }
    }
}

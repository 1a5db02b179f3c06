using System.Collections.Concurrent;
using System.Net.Sockets;

namespace Hypercore.Drivers.Vmm.Qmp;

/// <summary>
/// Issue 15 (idle cost of running VMs): one QMP session per running VM, kept open for its status polls on a monitor
/// socket of its own (QEMU serves several <c>-qmp</c> monitors, one client each). A poll is then one query-status on an
/// open connection instead of connect, greeting, qmp_capabilities and query-status on a new one, every ~2 s per VM.
/// The VM's main QMP socket stays free for the driver's control sessions and for an operator's own tools.
/// A session belongs to one process (pid): a new process for the same VM gets a new session. Whatever fails here (no
/// greeting because another client holds the monitor, a lost or hung connection) makes the caller fall back to a
/// session of its own on the main socket for that poll, so a hung QEMU is reported exactly as before.
/// </summary>
public sealed class QmpStatusSessions(TimeProvider time, TimeSpan commandTimeout) : IDisposable
{
    private readonly ConcurrentDictionary<string, Session> _byUid = new(StringComparer.Ordinal);
    private bool _disposed;

    /// <summary>After a connect to the status monitor failed, how long polls use a session on the main socket instead.</summary>
    public static readonly TimeSpan RetryAfterFailedConnect = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Issue 15 (idle4): an event QEMU sent on a kept session (VM uid, event name such as STOP, RESUME, SHUTDOWN), raised
    /// on the session's reading thread the moment it arrives; a handler must return quickly. A VM's events flow from its
    /// first status poll on (the session is opened by it) until its session is closed.
    /// </summary>
    public event Action<string, string>? Event;

    /// <summary>Sessions open now (tests, metrics).</summary>
    public int Count => _byUid.Count(s => s.Value.Client is not null);

    /// <summary>
    /// query-status over the VM's kept session, opened on <paramref name="socket"/> when there is none; null when this
    /// session cannot answer: no such socket (a QEMU started before the status monitor existed), no greeting on it, or
    /// the kept connection failed (closed; the next poll opens another). On null the caller opens a session of its
    /// own on the main socket, as every poll did before, so no failure here changes what a poll reports.
    /// </summary>
    public async Task<string?> StatusAsync(string uid, int pid, string socket, CancellationToken ct)
    {
        if (_disposed)
        {
            return null; // the driver is going away (daemon shutdown): a session of the caller's own, as before
        }

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

            if (session.Client is null)
            {
                if (time.GetUtcNow() < session.RetryAt || !File.Exists(socket))
                {
                    return null;
                }

                try
                {
                    session.Client = await QmpClient.ConnectAsync(socket, time, commandTimeout, ct);
                    session.Pid = pid;
                    session.Client.FollowEvents(name => Event?.Invoke(uid, name)); // issue 15, idle4: events at once
                }
                catch (Exception ex) when (ex is QmpException or SocketException or IOException)
                {
                    // Nobody answers on the status monitor (another client holds it, or QEMU serves no one): this poll
                    // and those of the next minute ask over a session on the main socket, exactly as before.
                    session.RetryAt = time.GetUtcNow() + RetryAfterFailedConnect;
                    return null;
                }
            }

            try
            {
                return await session.Client.QueryStatusAsync(ct);
            }
            catch (Exception ex) when (ex is QmpException or SocketException or IOException or OperationCanceledException)
            {
                // A reply may still be on its way, or the connection is gone: never reused. The caller then asks over
                // a session of its own, so a lost or hung QEMU is reported exactly as a poll did before.
                await session.CloseAsync();
                if (ex is OperationCanceledException && ct.IsCancellationRequested)
                {
                    throw;
                }

                return null;
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

        public DateTimeOffset RetryAt { get; set; }

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

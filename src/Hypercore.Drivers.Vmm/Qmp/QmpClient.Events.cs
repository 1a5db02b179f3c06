using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Hypercore.Drivers.Vmm.Qmp;

/// <summary>
/// Issue 15 (idle4): a session kept open can follow QEMU's events (<see cref="FollowEvents"/>). One read is then always
/// pending on the socket: an event (<c>{"event": "STOP", …}</c>) is handed on the moment it arrives, and the reply to a
/// command goes to the command waiting for it. Without this, events were only skipped while a command read its reply,
/// so a pause from outside or a guest power-off was seen at the next status poll.
/// </summary>
public sealed partial class QmpClient
{
    private readonly object _replyGate = new();
    private Task? _following;
    private CancellationTokenSource? _stopFollowing;
    private PendingReply? _pending;
    private QmpException? _followFailed;

    /// <summary>
    /// From now on reads every message as it arrives: events go to <paramref name="onEvent"/> (with the event's name,
    /// on the reading thread, so it must return quickly), replies to <see cref="ExecuteAsync"/>. Once the connection
    /// ends, every command fails at once with the reason. Call once, after connecting, before any other command.
    /// </summary>
    public void FollowEvents(Action<string> onEvent)
    {
        if (_following is not null)
        {
            throw new InvalidOperationException("this QMP session already follows events");
        }

        _stopFollowing = new CancellationTokenSource();
        _following = ReadAllAsync(onEvent, _stopFollowing.Token);
    }

    /// <summary>Whether the session follows events and its connection is still open.</summary>
    public bool IsFollowing => _following is { IsCompleted: false };

    private async Task ReadAllAsync(Action<string> onEvent, CancellationToken stop)
    {
        await Task.Yield(); // the caller goes on; the read loop runs on the pool
        QmpException failure;
        try
        {
            while (true)
            {
                var line = await _reader.ReadLineAsync(stop);
                if (line is null)
                {
                    failure = new QmpException("Disconnected", "QEMU closed the QMP connection");
                    break;
                }

                var message = JsonNode.Parse(line) as JsonObject ?? throw new QmpException("ProtocolError", $"not a JSON object: {line}");
                if (message["event"] is JsonValue name && name.TryGetValue<string>(out var eventName))
                {
                    onEvent(eventName);
                }
                else
                {
                    Deliver(message);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            failure = new QmpException("Disconnected", "the QMP session was closed");
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            failure = new QmpException("Disconnected", ex.Message);
        }
        catch (JsonException ex)
        {
            failure = new QmpException("ProtocolError", $"bad JSON from QMP: {ex.Message}");
        }
        catch (QmpException ex)
        {
            failure = ex;
        }

        PendingReply? waiting;
        lock (_replyGate)
        {
            _followFailed = failure;
            (waiting, _pending) = (_pending, null);
        }

        waiting?.Reply.TrySetException(failure);
    }

    /// <summary>Registers the command <paramref name="id"/> before it is sent (its reply may come before the send returns); null when not following.</summary>
    private PendingReply? ExpectReply(string id)
    {
        if (_following is null)
        {
            return null;
        }

        var pending = new PendingReply(id, new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously));
        lock (_replyGate)
        {
            if (_followFailed is { } failed)
            {
                pending.Reply.TrySetException(failed);
            }
            else
            {
                _pending = pending; // one command at a time on a session (its owner serializes them)
            }
        }

        return pending;
    }

    private async Task<JsonObject> ReplyAsync(PendingReply pending, string command, CancellationToken ct)
    {
        try
        {
            return await pending.Reply.Task.WaitAsync(_timeout, _time, ct);
        }
        catch (TimeoutException)
        {
            throw new QmpException("Timeout", $"{command}: no reply within {_timeout.TotalSeconds:0.#} s");
        }
        finally
        {
            lock (_replyGate)
            {
                if (_pending == pending)
                {
                    _pending = null;
                }
            }
        }
    }

    /// <summary>A reply to anything but the command waiting now (one abandoned after its timeout) is dropped.</summary>
    private void Deliver(JsonObject message)
    {
        PendingReply? pending;
        lock (_replyGate)
        {
            pending = _pending;
            var id = message["id"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
            if (pending is null || (id is not null && id != pending.Id))
            {
                return;
            }

            _pending = null;
        }

        pending.Reply.TrySetResult(message);
    }

    private async Task StopFollowingAsync()
    {
        if (Interlocked.Exchange(ref _stopFollowing, null) is not { } stop || _following is not { } following)
        {
            return; // not following, or already stopped (a session may be disposed twice)
        }

        await stop.CancelAsync();
        try
        {
            _socket.Shutdown(SocketShutdown.Both); // a read the cancel does not reach ends with the connection
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        await following.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        stop.Dispose();
    }

    private sealed record PendingReply(string Id, TaskCompletionSource<JsonObject> Reply);
}

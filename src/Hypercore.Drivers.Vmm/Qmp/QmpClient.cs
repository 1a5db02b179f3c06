using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hypercore.HostAccess;

namespace Hypercore.Drivers.Vmm.Qmp;

/// <summary>
/// A QMP session over QEMU's Unix socket: reads the greeting, negotiates with <c>qmp_capabilities</c>, then runs
/// one command at a time. Messages are JSON objects, one per line; asynchronous events (<c>{"event": ...}</c>)
/// interleave with replies and are skipped, unless the session follows them (<see cref="FollowEvents"/>). QEMU
/// serves one client per socket at a time, so sessions are short.
/// </summary>
public sealed partial class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;
    private readonly TimeProvider _time;
    private readonly TimeSpan _timeout;
    private int _nextId;

    private QmpClient(Socket socket, TimeProvider time, TimeSpan timeout)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new StreamReader(_stream, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: false, bufferSize: 1024, leaveOpen: true);
        _time = time;
        _timeout = timeout;
    }

    /// <summary>The "QMP" greeting's version, e.g. "7.2.22".</summary>
    public string Version { get; private set; } = "";

    /// <summary>Connects once (no retry: <see cref="QmpConnector"/> adds that) and negotiates capabilities.</summary>
    public static async Task<QmpClient> ConnectAsync(string socketPath, TimeProvider time, TimeSpan timeout, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        QmpClient? client = null;
        try
        {
            using (var deadline = new Deadline(time, timeout, ct))
            {
                try
                {
                    // Never through a link: with qemu-user the socket's directory is QEMU's to write (vmm/).
                    await VmmSocket.ConnectAsync(socket, socketPath, deadline.Token);
                }
                catch (OperationCanceledException) when (deadline.Expired)
                {
                    throw new QmpException("Timeout", $"could not connect to {socketPath} within {timeout.TotalSeconds:0.#} s");
                }
                catch (NotAVmmSocketException ex)
                {
                    throw new QmpException("Refused", ex.Message); // not retried: a moment does not fix it
                }
            }

            client = new QmpClient(socket, time, timeout);
            var greeting = await client.ReadMessageAsync(ct);
            if (greeting["QMP"] is not JsonObject qmp)
            {
                throw new QmpException("ProtocolError", $"expected the QMP greeting, got {greeting.ToJsonString()}");
            }

            var v = qmp["version"]?["qemu"];
            client.Version = v is null ? "" : $"{v["major"]}.{v["minor"]}.{v["micro"]}";
            await client.ExecuteAsync("qmp_capabilities", null, ct);
            return client;
        }
        catch
        {
            if (client is not null)
            {
                await client.DisposeAsync();
            }
            else
            {
                socket.Dispose();
            }

            throw;
        }
    }

    /// <summary>Runs one command and returns its "return" value.</summary>
    /// <exception cref="QmpException">QEMU answered with an error, or the reply did not come in time.</exception>
    public async Task<JsonNode?> ExecuteAsync(string command, JsonObject? arguments, CancellationToken ct)
    {
        var id = $"hc-{Interlocked.Increment(ref _nextId)}";
        var request = new JsonObject { ["execute"] = command, ["id"] = id };
        if (arguments is not null)
        {
            request["arguments"] = arguments;
        }

        var bytes = Encoding.UTF8.GetBytes(request.ToJsonString() + "\n");
        var reply = ExpectReply(id); // issue 15: QmpClient.Events.cs; null unless the session follows events
        using (var deadline = new Deadline(_time, _timeout, ct))
        {
            try
            {
                await _stream.WriteAsync(bytes, deadline.Token);
            }
            catch (OperationCanceledException) when (deadline.Expired)
            {
                throw new QmpException("Timeout", $"{command}: could not send within {_timeout.TotalSeconds:0.#} s");
            }
            catch (IOException ex)
            {
                throw new QmpException("Disconnected", $"{command}: {ex.Message}");
            }
        }

        while (true)
        {
            var message = reply is null ? await ReadMessageAsync(ct) : await ReplyAsync(reply, command, ct);
            if (message.ContainsKey("event"))
            {
                continue;
            }

            if (message["id"]?.GetValue<string>() is { } replyId && replyId != id)
            {
                continue; // a reply to something an earlier, abandoned call sent
            }

            if (message["error"] is JsonObject error)
            {
                throw new QmpException(error["class"]?.GetValue<string>() ?? "GenericError", $"{command}: {error["desc"]?.GetValue<string>()}");
            }

            if (message.ContainsKey("return"))
            {
                return message["return"];
            }

            throw new QmpException("ProtocolError", $"{command}: unexpected reply {message.ToJsonString()}");
        }
    }

    /// <summary>query-status "status": running, paused, shutdown, prelaunch, suspended, internal-error, ...</summary>
    public async Task<string> QueryStatusAsync(CancellationToken ct)
    {
        var result = await ExecuteAsync("query-status", null, ct);
        return result?["status"]?.GetValue<string>() ?? throw new QmpException("ProtocolError", "query-status: no status in the reply");
    }

    private async Task<JsonObject> ReadMessageAsync(CancellationToken ct)
    {
        using var deadline = new Deadline(_time, _timeout, ct);
        string? line;
        try
        {
            line = await _reader.ReadLineAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (deadline.Expired)
        {
            throw new QmpException("Timeout", $"no QMP message within {_timeout.TotalSeconds:0.#} s");
        }
        catch (IOException ex)
        {
            throw new QmpException("Disconnected", ex.Message);
        }

        if (line is null)
        {
            throw new QmpException("Disconnected", "QEMU closed the QMP connection");
        }

        try
        {
            return JsonNode.Parse(line) as JsonObject ?? throw new QmpException("ProtocolError", $"not a JSON object: {line}");
        }
        catch (JsonException ex)
        {
            throw new QmpException("ProtocolError", $"bad JSON from QMP: {ex.Message}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopFollowingAsync(); // issue 15: QmpClient.Events.cs
        _reader.Dispose();
        await _stream.DisposeAsync();
        _socket.Dispose();
    }
}

using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Hypercore.Drivers.Unikernel;

/// <summary>
/// A minimal QMP client: connect to the Unix socket, read the greeting, negotiate with qmp_capabilities, then one
/// command at a time; asynchronous events ({"event": ...}) between are skipped.
/// </summary>
internal sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly StreamWriter _writer;

    private QmpClient(Socket socket)
    {
        _socket = socket;
        var stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new StreamReader(stream, Encoding.UTF8);
        _writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\r\n" };
    }

    /// <summary>Connects and negotiates capabilities. Throws <see cref="SocketException"/> when nobody listens.</summary>
    public static async Task<QmpClient> ConnectAsync(string socketPath, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
            var client = new QmpClient(socket);
            var greeting = await client.ReadMessageAsync(ct);
            if (greeting["QMP"] is null)
            {
                throw new IOException("QMP greeting expected, got " + greeting.ToJsonString());
            }

            await client.ExecuteAsync("qmp_capabilities", null, ct);
            return client;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Runs a command and returns its "return" value; a QMP error becomes <see cref="DriverException"/>.</summary>
    public async Task<JsonNode?> ExecuteAsync(string command, JsonObject? arguments, CancellationToken ct)
    {
        var request = new JsonObject { ["execute"] = command };
        if (arguments is not null)
        {
            request["arguments"] = arguments;
        }

        await _writer.WriteLineAsync(request.ToJsonString().AsMemory(), ct);
        while (true)
        {
            var message = await ReadMessageAsync(ct);
            if (message["event"] is not null)
            {
                continue;
            }

            if (message["error"] is JsonObject error)
            {
                throw new DriverException("HypervisorError", $"QMP {command} failed: {error["class"]}: {error["desc"]}");
            }

            if (message.ContainsKey("return"))
            {
                return message["return"];
            }
        }
    }

    private async Task<JsonObject> ReadMessageAsync(CancellationToken ct)
    {
        var line = await _reader.ReadLineAsync(ct) ?? throw new IOException("QMP connection closed");
        return JsonNode.Parse(line) as JsonObject ?? throw new IOException("QMP sent a non-object: " + line);
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _writer.Dispose();
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}

using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// A minimal QMP client of the test's own, to ask QEMU directly what the daemon claims: greeting,
/// qmp_capabilities, query-status. QEMU serves one QMP client at a time, so a connection waits while the
/// daemon's poll holds the socket; that is why the timeout is generous.
/// </summary>
internal static class QmpProbe
{
    public static async Task<string> QueryStatusAsync(string socketPath, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cts.Token);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        using var reader = new StreamReader(stream, Encoding.UTF8);

        var greeting = await reader.ReadLineAsync(cts.Token) ?? throw new AssertionException("QMP closed before its greeting");
        using (var doc = JsonDocument.Parse(greeting))
        {
            if (!doc.RootElement.TryGetProperty("QMP", out _))
            {
                throw new AssertionException($"not a QMP greeting: {greeting}");
            }
        }

        await ExecuteAsync(stream, reader, "qmp_capabilities", cts.Token);
        using var status = await ExecuteAsync(stream, reader, "query-status", cts.Token);
        return status.RootElement.GetProperty("return").GetProperty("status").GetString()!;
    }

    /// <summary>Sends one command and returns its reply, skipping asynchronous events.</summary>
    private static async Task<JsonDocument> ExecuteAsync(NetworkStream stream, StreamReader reader, string command, CancellationToken ct)
    {
        await stream.WriteAsync(Encoding.UTF8.GetBytes($"{{\"execute\":\"{command}\"}}\n"), ct);
        while (true)
        {
            var line = await reader.ReadLineAsync(ct) ?? throw new AssertionException($"QMP closed while waiting for the reply to {command}");
            var doc = JsonDocument.Parse(line);
            if (doc.RootElement.TryGetProperty("return", out _))
            {
                return doc;
            }

            if (doc.RootElement.TryGetProperty("error", out var error))
            {
                doc.Dispose();
                throw new AssertionException($"QMP {command} failed: {error}");
            }

            doc.Dispose(); // an event
        }
    }
}

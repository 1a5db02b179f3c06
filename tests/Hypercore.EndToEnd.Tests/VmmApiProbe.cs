using System.Net.Sockets;
using System.Text.Json;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// Asks a VMM directly, over its API socket, what the daemon claims: firecracker's <c>GET /</c> and
/// cloud-hypervisor's <c>GET /api/v1/vm.info</c> both answer a JSON object with a "state". The test's own client
/// (HttpClient over a Unix socket), sharing no code with the drivers.
/// </summary>
internal static class VmmApiProbe
{
    /// <summary>The "state" the VMM reports: firecracker "Not started" | "Running" | "Paused"; cloud-hypervisor "Created" | "Running" | "Paused" | "Shutdown".</summary>
    public static async Task<string> StateAsync(string provider, string socketPath)
    {
        var path = provider switch
        {
            "firecracker" => "/",
            "cloud-hypervisor" => "/api/v1/vm.info",
            _ => throw new ArgumentOutOfRangeException(nameof(provider), provider, "no API to ask"),
        };
        var json = await GetAsync(socketPath, path);
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.TryGetProperty("state", out var state) && state.ValueKind == JsonValueKind.String
            ? state.GetString()!
            : throw new AssertionException($"GET {path} on {socketPath} has no state: {json}");
    }

    public static async Task<string> GetAsync(string socketPath, string path)
    {
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        using var client = new HttpClient(handler) { BaseAddress = new Uri("http://localhost"), Timeout = TimeSpan.FromSeconds(30) };
        using var response = await client.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        response.IsSuccessStatusCode.Should().BeTrue($"GET {path} on {socketPath}: {(int)response.StatusCode} {body}");
        return body;
    }
}

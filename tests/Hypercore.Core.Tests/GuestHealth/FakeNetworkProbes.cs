using System.Collections.Concurrent;
using System.Net;
using Hypercore.GuestHealth;

namespace Hypercore.Core.Tests.GuestHealth;

/// <summary>Answers TCP/HTTP probes from a script, recording what was asked.</summary>
internal sealed class FakeNetworkProbes : INetworkProbes
{
    public ConcurrentQueue<string> Calls { get; } = new();

    /// <summary>What the next probes return; the last one repeats.</summary>
    public Queue<ProbeResult> Script { get; } = new();

    public ProbeResult Default { get; set; } = ProbeResult.Ok("fake ok");

    public Task<ProbeResult> TcpAsync(IPAddress address, int port, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Calls.Enqueue($"tcp {address}:{port} timeout {timeout.TotalSeconds}");
        return Task.FromResult(Next());
    }

    public Task<ProbeResult> HttpGetAsync(IPAddress address, int port, string path, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Calls.Enqueue($"http {address}:{port}{path} timeout {timeout.TotalSeconds}");
        return Task.FromResult(Next());
    }

    private ProbeResult Next()
    {
        if (Script.Count > 1)
        {
            return Script.Dequeue();
        }

        return Script.Count == 1 ? Script.Peek() : Default;
    }
}

using System.Diagnostics;
using System.Net.Sockets;
using Hypercore.Drivers.Vmm.Qmp;

namespace Hypercore.Benchmarks.Density;

/// <summary>
/// "Initialised" for the bare side of the density benchmark: QEMU's QMP socket exists and QEMU has answered
/// <c>query-status</c> on it. The socket's existence is polled every <see cref="PollInterval"/> (a stat, cheap enough
/// for 100 at once); once it exists the connect waits in the listen backlog until QEMU's main loop sends the greeting,
/// so the answer itself is not polled.
/// </summary>
public static class QmpProbe
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(10);

    /// <summary>Elapsed times from <paramref name="t0"/>: the socket appeared, and QEMU answered query-status.</summary>
    public static async Task<(TimeSpan SocketSeen, TimeSpan Answered)> WaitAsync(string socket, Func<bool> alive, long t0, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        TimeSpan? seen = null;
        while (true)
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"QMP at {socket} did not answer within {timeout.TotalSeconds:0} s");
            }

            if (!alive())
            {
                throw new InvalidOperationException($"QEMU of {socket} exited before its QMP answered");
            }

            if (seen is null && File.Exists(socket))
            {
                seen = Stopwatch.GetElapsedTime(t0);
            }

            if (seen is not null)
            {
                try
                {
                    await using var qmp = await QmpClient.ConnectAsync(socket, TimeProvider.System, timeout, ct);
                    await qmp.QueryStatusAsync(ct);
                    return (seen.Value, Stopwatch.GetElapsedTime(t0));
                }
                catch (SocketException)
                {
                    // bound but not listening yet
                }
            }

            await Task.Delay(PollInterval, ct);
        }
    }
}

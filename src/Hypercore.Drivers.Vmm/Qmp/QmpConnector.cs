using System.Net.Sockets;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Hypercore.Drivers.Vmm.Qmp;

/// <summary>
/// Opens QMP sessions through a Polly pipeline (rule 6): an overall timeout around a capped exponential retry,
/// retrying only what a moment can fix: a socket that is not there yet or refuses, a busy single-client socket
/// (greeting timeout) or a dropped connection.
/// </summary>
public sealed class QmpConnector
{
    private readonly TimeProvider _time;
    private readonly TimeSpan _attemptTimeout;
    private readonly Lazy<ResiliencePipeline> _pipeline;

    public QmpConnector(TimeProvider time, TimeSpan attemptTimeout, int maxRetries = 4)
    {
        _time = time;
        _attemptTimeout = attemptTimeout;

        // Built at the first connect (issue 15, idle RSS): Polly validates each strategy's options with DataAnnotations,
        // whose TypeDescriptor reflection the Native AOT daemon would otherwise keep from start on a node without VMs
        // (bench/NOTES.md, rss4). The same pipeline, once, thread-safe; the options are validated at start regardless.
        _pipeline = new(() => BuildPipeline(time, attemptTimeout, maxRetries));
    }

    private static ResiliencePipeline BuildPipeline(TimeProvider time, TimeSpan attemptTimeout, int maxRetries) =>
        new ResiliencePipelineBuilder { TimeProvider = time }
            .AddTimeout(new TimeoutStrategyOptions { Timeout = attemptTimeout * (maxRetries + 1) + TimeSpan.FromSeconds(5) })
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder()
                    .Handle<SocketException>()
                    .Handle<QmpException>(e => e.ErrorClass is "Timeout" or "Disconnected"),
                MaxRetryAttempts = maxRetries,
                BackoffType = DelayBackoffType.Exponential,
                Delay = TimeSpan.FromMilliseconds(100),
                MaxDelay = TimeSpan.FromSeconds(1),
                UseJitter = true,
            })
            .Build();

    /// <exception cref="QmpException">every attempt failed; the last failure's message.</exception>
    public async Task<QmpClient> ConnectAsync(string socketPath, CancellationToken ct)
    {
        try
        {
            return await _pipeline.Value.ExecuteAsync(
                async token => await QmpClient.ConnectAsync(socketPath, _time, _attemptTimeout, token), ct);
        }
        catch (SocketException ex)
        {
            throw new QmpException("Unreachable", $"QMP socket {socketPath}: {ex.Message}");
        }
        catch (TimeoutRejectedException)
        {
            throw new QmpException("Timeout", $"QMP socket {socketPath} did not answer in time");
        }
    }
}

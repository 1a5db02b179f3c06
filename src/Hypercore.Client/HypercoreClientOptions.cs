namespace Hypercore.Client;

/// <summary>Settings for <see cref="HypercoreClient"/>. Every default suits a daemon on the same machine.</summary>
public sealed class HypercoreClientOptions
{
    /// <summary>Clock for wait timeouts and polling. Default: the system clock.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>How long opening a TCP connection to the daemon may take before the call fails as Unavailable. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Interval between Get calls when a wait has to poll because Watch is not available. Default 1 s.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a wait gives the daemon to confirm a Watch subscription (its response headers) before it polls
    /// instead. Default 10 s.
    /// </summary>
    public TimeSpan WatchSubscribeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(TimeProvider);
        if (ConnectTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"ConnectTimeout must be positive, got {ConnectTimeout}", nameof(ConnectTimeout));
        }

        if (WatchSubscribeTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"WatchSubscribeTimeout must be positive, got {WatchSubscribeTimeout}", nameof(WatchSubscribeTimeout));
        }

        if (PollInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException($"PollInterval must be positive, got {PollInterval}", nameof(PollInterval));
        }
    }
}

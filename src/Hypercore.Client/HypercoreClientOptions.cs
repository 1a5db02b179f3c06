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

    /// <summary>PEM CA certificate(s) the daemon's TLS certificate must chain to (instead of the system's roots).</summary>
    public string? TlsCaFile { get; set; }

    /// <summary>PEM client certificate for daemons that authenticate callers by certificate (with <see cref="TlsKeyFile"/>).</summary>
    public string? TlsCertFile { get; set; }

    /// <summary>PEM private key of <see cref="TlsCertFile"/>.</summary>
    public string? TlsKeyFile { get; set; }

    /// <summary>A token sent as <c>authorization: Bearer TOKEN</c> on every call.</summary>
    public string? Token { get; set; }

    /// <summary>
    /// A file holding the token: the first word of its first line that is not blank or a comment (so the daemon's own
    /// "TOKEN IDENTITY" file works too). Used when <see cref="Token"/> is not set.
    /// </summary>
    public string? TokenFile { get; set; }

    /// <summary>Whether any TLS setting is given: an address without a scheme then means https.</summary>
    public bool UsesTls => !string.IsNullOrWhiteSpace(TlsCaFile) || !string.IsNullOrWhiteSpace(TlsCertFile);

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(TlsCertFile) != string.IsNullOrWhiteSpace(TlsKeyFile))
        {
            throw new ArgumentException("TlsCertFile and TlsKeyFile go together (a client certificate and its key)");
        }

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

namespace Hypercore.MicroVms;

/// <summary>
/// A guest health probe (issue 14), shaped like a Kubernetes probe: exactly one check (<see cref="Console"/>,
/// <see cref="TcpSocket"/> or <see cref="HttpGet"/>) and its timing. successThreshold is always 1.
/// </summary>
public sealed record ProbeSpec
{
    public const int DefaultPeriodSeconds = 10;
    public const int DefaultTimeoutSeconds = 1;
    public const int DefaultFailureThreshold = 3;

    /// <summary>A console line matching a regex; needs no guest network.</summary>
    public ConsoleProbe? Console { get; init; }

    /// <summary>A TCP connect to a port on the guest's address.</summary>
    public TcpSocketProbe? TcpSocket { get; init; }

    /// <summary>An HTTP GET to a port and path on the guest's address; 200-399 is success.</summary>
    public HttpGetProbe? HttpGet { get; init; }

    /// <summary>Seconds after the boot before the first probe.</summary>
    public int InitialDelaySeconds { get; init; }

    public int PeriodSeconds { get; init; } = DefaultPeriodSeconds;

    /// <summary>Longest a TCP connect or HTTP GET may take before it counts as a failure.</summary>
    public int TimeoutSeconds { get; init; } = DefaultTimeoutSeconds;

    /// <summary>Consecutive failures that make a ready guest not ready (readiness) or restart it (liveness).</summary>
    public int FailureThreshold { get; init; } = DefaultFailureThreshold;

    /// <summary>Short description for messages, e.g. <c>console /HYPERCORE-GUEST-READY/</c> or <c>tcp :22</c>.</summary>
    public string Describe() =>
        Console is { } c ? $"console /{c.Regex}/"
        : TcpSocket is { } t ? $"tcp :{t.Port}"
        : HttpGet is { } h ? $"http :{h.Port}{h.Path}"
        : "no check";
}

/// <summary>
/// Readiness: succeeds once a line of this boot's console matched. Liveness: succeeds when a line matched since the
/// previous probe (the guest keeps printing it, e.g. a heartbeat).
/// </summary>
public sealed record ConsoleProbe(string Regex);

public sealed record TcpSocketProbe(int Port);

public sealed record HttpGetProbe(int Port, string Path = "/");

namespace Hypercore.Client;

/// <summary>Observed phases (<c>status.phase</c>) the daemon reports.</summary>
public static class MicroVmPhases
{
    public const string Pending = "Pending";
    public const string Provisioning = "Provisioning";
    public const string Running = "Running";
    public const string Paused = "Paused";
    public const string Stopping = "Stopping";
    public const string Stopped = "Stopped";
    public const string Failed = "Failed";
    public const string Deleting = "Deleting";
    public const string CrashLoopBackOff = "CrashLoopBackOff";
}

/// <summary>Desired lifecycle values (<c>spec.state</c>).</summary>
public static class DesiredStates
{
    public const string Running = "Running";
    public const string Stopped = "Stopped";
    public const string Paused = "Paused";
}

/// <summary>Values of <c>spec.restart_policy</c>.</summary>
public static class RestartPolicies
{
    public const string Always = "Always";
    public const string OnFailure = "OnFailure";
    public const string Never = "Never";

    public static readonly IReadOnlyList<string> All = [Always, OnFailure, Never];

    /// <summary>The canonical spelling of <paramref name="value"/> (any case), or null when it is not a policy.</summary>
    public static string? Normalize(string value) =>
        All.FirstOrDefault(p => string.Equals(p, value, StringComparison.OrdinalIgnoreCase));
}

/// <summary>Watch event types.</summary>
public static class WatchEventTypes
{
    public const string Added = "ADDED";
    public const string Modified = "MODIFIED";
    public const string Deleted = "DELETED";
}

/// <summary>Condition types in <c>status.conditions</c>.</summary>
public static class ConditionTypes
{
    public const string Ready = "Ready";
    public const string Paused = "Paused";
    public const string Synchronized = "Synchronized";

    /// <summary>Guest health: the readiness probe's verdict (only present when the spec has a readiness probe).</summary>
    public const string GuestReady = "GuestReady";
}

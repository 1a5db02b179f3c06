namespace Hypercore.Daemon.Configuration;

/// <summary>
/// The node lifecycle controller of Kubernetes mode (Kubernetes issue 13), mapped straight to
/// <c>NodeLifecycleOptions</c>, which validates them at start.
/// </summary>
public static class NodeLifecycleSettings
{
    public static readonly DaemonSetting NotReadyTimeout = new("node-not-ready-timeout", "NodeLifecycle:NotReadyTimeout",
        "with store = kubernetes: how long a node may be NotReady before its MicroVMs are marked NodeLost and their finalizers released; default 5m", "duration")
    {
        Kind = SettingKind.Duration,
    };

    public static readonly DaemonSetting CheckInterval = new("node-lifecycle-interval", "NodeLifecycle:CheckInterval",
        "with store = kubernetes: how often the daemon holding the node-lifecycle Lease looks at the nodes and places unplaced MicroVMs (and the others try for the Lease); default 10s", "duration")
    {
        Kind = SettingKind.Duration,
    };

    public static readonly IReadOnlyList<DaemonSetting> All = [NotReadyTimeout, CheckInterval];
}

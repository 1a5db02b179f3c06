namespace Hypercore.Daemon.Configuration;

/// <summary>
/// The daemon's own settings (section "Daemon"), from the TOML file and the command line (flags win). Settings that
/// belong to a component (the reconciler, each driver) are not here: their flags map straight to that component's
/// section (see <see cref="DaemonSettings"/>, <see cref="DriverSettings"/>), and the component validates them.
/// </summary>
public sealed partial class DaemonOptions
{
    public const string Section = "Daemon";

    /// <summary>gRPC (HTTP/2; with TLS also HTTP/1.1) listen address. Default localhost:9090.</summary>
    public string GrpcEndpoint { get; set; } = "localhost:9090";

    /// <summary>HTTP/JSON (HTTP/1.1) listen address; must differ from the gRPC one (no TLS, so no ALPN). Default localhost:9091.</summary>
    public string HttpEndpoint { get; set; } = "localhost:9091";

    /// <summary>State directory: hypercore.db, run/&lt;provider&gt;/&lt;uid&gt;/, images/&lt;name&gt;/. Default /var/lib/hypercore.</summary>
    public string StateDirectory { get; set; } = "/var/lib/hypercore";

    /// <summary>Provider used when a spec names none. Default qemu.</summary>
    public string DefaultProvider { get; set; } = "qemu";

    /// <summary>QEMU accelerator: auto (KVM when it can boot a guest, else TCG), kvm or tcg. Default auto.</summary>
    public string QemuAccelerator { get; set; } = "auto";

    /// <summary>This node's name (records for other nodes are left alone). Default: the host name.</summary>
    public string NodeName { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>Minimum log level: Trace, Debug, Information, Warning, Error, Critical. Default Information.</summary>
    public string LogLevel { get; set; } = "Information";

    /// <summary>Log format on stderr: text or json. Default text.</summary>
    public string LogFormat { get; set; } = "text";

    /// <summary>
    /// Where desired state lives: sqlite (&lt;state-dir&gt;/hypercore.db) or kubernetes (MicroVM custom resources of
    /// this node). Default sqlite.
    /// </summary>
    public string Store { get; set; } = StoreKinds.Sqlite;

    /// <summary>
    /// kubeconfig file for the kubernetes store. Empty: the in-cluster service account in a pod, else
    /// <c>$KUBECONFIG</c>, else <c>~/.kube/config</c>.
    /// </summary>
    public string Kubeconfig { get; set; } = "";

    /// <summary>Namespace whose MicroVMs the kubernetes store sees; empty means all namespaces.</summary>
    public string KubeNamespace { get; set; } = "";

    /// <summary>OTLP collector address for traces and metrics; empty: OTEL_EXPORTER_OTLP_ENDPOINT if set, else none.</summary>
    public string OtlpEndpoint { get; set; } = "";

    /// <summary>
    /// Issue 15, density: the nice value of the daemon's scheduling autogroup, so that the guests it starts (each in a
    /// session of its own) cannot starve it of CPU (<see cref="Hosting.ControlPlanePriority"/>); 0 leaves it. Unset:
    /// −20 when the daemon leads its own session (started by a service manager or setsid), else left as it is (the
    /// session is a shell's, or a test runner's, and would be raised with it).
    /// </summary>
    public int? AutogroupNice { get; set; }

    public string DatabasePath => Path.Combine(StateDirectory, "hypercore.db");

    public string ImageDirectory => Path.Combine(StateDirectory, "images");

    public string RuntimeDirectory(string provider) => Path.Combine(StateDirectory, "run", provider);
}

/// <summary>The values of the <c>store</c> setting.</summary>
public static class StoreKinds
{
    public const string Sqlite = "sqlite";
    public const string Kubernetes = "kubernetes";

    public static readonly IReadOnlyList<string> All = [Sqlite, Kubernetes];
}

/// <summary>
/// One setting: its flag / TOML key, its configuration key (the section of the component that owns it, e.g.
/// "Reconciler:Workers") and its help text. A switch is a flag without a value. Typed settings (<see cref="Kind"/>)
/// are read by <see cref="SettingValues"/>.
/// </summary>
public sealed record DaemonSetting(string Name, string ConfigKey, string Description, string HelpName, bool IsSwitch = false)
{
    public string Flag => "--" + Name;

    public SettingKind Kind { get; init; } = SettingKind.Text;

    public long Min { get; init; }

    public long Max { get; init; } = long.MaxValue;
}

/// <summary>
/// The table of settings. A flag and a TOML key have the same name (<c>--grpc-endpoint</c> / <c>grpc-endpoint = "…"</c>),
/// so a message can name a setting once and be right for both.
/// </summary>
public static class DaemonSettings
{
    public static readonly DaemonSetting GrpcEndpoint = new("grpc-endpoint", "Daemon:GrpcEndpoint", "gRPC (HTTP/2) listen address; default localhost:9090", "host:port");
    public static readonly DaemonSetting HttpEndpoint = new("http-endpoint", "Daemon:HttpEndpoint", "HTTP/JSON (HTTP/1.1) listen address; default localhost:9091", "host:port");
    public static readonly DaemonSetting StateDirectory = new("state-dir", "Daemon:StateDirectory", "state directory (database, runtime dirs, images); default /var/lib/hypercore", "dir");
    public static readonly DaemonSetting DefaultProvider = new("default-provider", "Daemon:DefaultProvider", "provider for specs that name none; default qemu", "name");
    public static readonly DaemonSetting QemuAccelerator = new("qemu-accel", "Daemon:QemuAccelerator", "QEMU accelerator: auto, kvm or tcg; default auto", "auto|kvm|tcg");
    public static readonly DaemonSetting NodeName = new("node-name", "Daemon:NodeName", "this node's name; default the host name", "name");
    public static readonly DaemonSetting LogLevel = new("log-level", "Daemon:LogLevel", "minimum log level; default Information", "level");
    public static readonly DaemonSetting LogFormat = new("log-format", "Daemon:LogFormat", "log format on stderr: text or json; default text", "text|json");

    public static readonly DaemonSetting OtlpEndpoint = new("otlp-endpoint", "Daemon:OtlpEndpoint", "OTLP collector for traces and metrics (http://host:4317); default $OTEL_EXPORTER_OTLP_ENDPOINT or none", "url");
    public static readonly DaemonSetting Store = new("store", "Daemon:Store", "desired-state store: sqlite or kubernetes; default sqlite", "sqlite|kubernetes");
    public static readonly DaemonSetting Kubeconfig = new("kubeconfig", "Daemon:Kubeconfig",
        "kubeconfig for --store kubernetes; default in-cluster, then $KUBECONFIG, then ~/.kube/config", "path");
    public static readonly DaemonSetting KubeNamespace = new("kube-namespace", "Daemon:KubeNamespace",
        "namespace whose MicroVMs --store kubernetes sees; default all namespaces", "namespace");

    public static readonly DaemonSetting AutogroupNice = new("autogroup-nice", "Daemon:AutogroupNice",
        "nice value of the daemon's scheduling autogroup (sched_autogroup: each guest is a session with an equal CPU share); 0 leaves it; default -20 when the daemon leads its own session, else left", "n")
    {
        Kind = SettingKind.WholeNumber, Min = -20, Max = 19,
    };

    public static readonly DaemonSetting ReconcileWorkers = new("reconcile-workers", "Reconciler:Workers",
        $"reconcile workers (one VM is never worked by two); default {Reconciliation.ReconcilerOptions.DefaultWorkers} on this machine (16 per CPU, at least 128)", "n")
    {
        Kind = SettingKind.WholeNumber, Min = 1, Max = 1024,
    };

    public static readonly DaemonSetting InspectTimeout = new("inspect-timeout", "Reconciler:InspectTimeout",
        "longest a hypervisor may take to report a VM's state before it counts as Unknown; default 5s", "duration")
    {
        Kind = SettingKind.Duration,
    };

    public static readonly DaemonSetting UnresponsiveAfter = new("unresponsive-after", "Reconciler:UnresponsiveAfter",
        "how long a VM's state may stay Unknown before it is Unresponsive, killed and handled by its restart policy; default 60s", "duration")
    {
        Kind = SettingKind.Duration,
    };

    public static readonly DaemonSetting ResyncInterval = new("resync-interval", "Reconciler:ResyncInterval",
        "every record is reconciled again once per this interval (spread over it in slices), even with nothing changed; default 5m", "duration")
    {
        Kind = SettingKind.Duration,
    };

    public static readonly DaemonSetting RelistInterval = new("relist-interval", Informers.InformerOptions.Section + ":ResyncInterval",
        "the store is listed again once per this interval and compared with the daemon's cache, to catch a change its watch missed (with sqlite only new and changed records are read); default 5m", "duration")
    {
        Kind = SettingKind.Duration,
    };

    public static readonly IReadOnlyList<DaemonSetting> All =
        [GrpcEndpoint, HttpEndpoint, StateDirectory, DefaultProvider, QemuAccelerator, NodeName, LogLevel, LogFormat,
            Store, Kubeconfig, KubeNamespace, OtlpEndpoint, AutogroupNice, ReconcileWorkers, InspectTimeout, UnresponsiveAfter, ResyncInterval, RelistInterval,
            .. DriverSettings.All,
            .. SecuritySettings.All,
            .. NodeDeviceAndConsoleSettings.All,
            .. HostAccessSettings.All,
            .. ImagesSettings.All, // images (issue 11)
            .. NetworkSettings.All, // node networking (issue 12)
            .. CapacitySettings.All, // Kubernetes issue 13: node capacity and admission
            .. HealthSettings.All, // guest health (issue 14)
            .. NodeLifecycleSettings.All]; // Kubernetes issue 13: MicroVMs of lost nodes

    public static DaemonSetting? Find(string name) => All.FirstOrDefault(s => s.Name == name);

    /// <summary>
    /// A component validator's message with every configuration key replaced by the flag / TOML key that sets it
    /// ("Firecracker:Jailer:Uid" becomes "jailer-uid"), so the user reads the names they type.
    /// </summary>
    public static string InUserTerms(string message)
    {
        foreach (var setting in All.OrderByDescending(s => s.ConfigKey.Length))
        {
            message = message.Replace(setting.ConfigKey, setting.Name, StringComparison.Ordinal);
        }

        return message;
    }
}

namespace Hypercore.Daemon.Configuration;

/// <summary>
/// The daemon's settings (section "Daemon"), from the TOML file and the command line (flags win).
/// Every property is one setting in <see cref="DaemonSettings"/>.
/// </summary>
public sealed partial class DaemonOptions
{
    public const string Section = "Daemon";

    /// <summary>gRPC (HTTP/2 cleartext) listen address. Default localhost:9090.</summary>
    public string GrpcEndpoint { get; set; } = "localhost:9090";

    /// <summary>HTTP/JSON (HTTP/1.1) listen address; must differ from the gRPC one (no TLS, so no ALPN). Default localhost:9091.</summary>
    public string HttpEndpoint { get; set; } = "localhost:9091";

    /// <summary>State directory: hypercore.db, run/&lt;provider&gt;/&lt;uid&gt;/, images/&lt;name&gt;/. Default /var/lib/hypercore.</summary>
    public string StateDirectory { get; set; } = "/var/lib/hypercore";

    /// <summary>Provider used when a spec names none. Default qemu.</summary>
    public string DefaultProvider { get; set; } = "qemu";

    /// <summary>QEMU binary. Default qemu-system-x86_64 (looked up on PATH).</summary>
    public string QemuBinary { get; set; } = "qemu-system-x86_64";

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

/// <summary>One setting: its flag / TOML key, its configuration key and its help text.</summary>
public sealed record DaemonSetting(string Name, string ConfigKey, string Description, string HelpName)
{
    public string Flag => "--" + Name;
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
    public static readonly DaemonSetting QemuBinary = new("qemu-bin", "Daemon:QemuBinary", "QEMU binary; default qemu-system-x86_64", "path");
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

    public static readonly IReadOnlyList<DaemonSetting> All =
        [GrpcEndpoint, HttpEndpoint, StateDirectory, DefaultProvider, QemuBinary, QemuAccelerator, NodeName, LogLevel, LogFormat,
            Store, Kubeconfig, KubeNamespace, OtlpEndpoint, .. DriverSettings.All, .. HostAccessSettings.All];

    public static DaemonSetting? Find(string name) => All.FirstOrDefault(s => s.Name == name);
}

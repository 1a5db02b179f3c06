using System.Net;
using Hypercore.Admission;
using Hypercore.Api;
using Hypercore.Api.Security;
using Hypercore.Daemon.Configuration;
using Hypercore.Daemon.Security;
using Hypercore.Drivers;
using Hypercore.Consoles;
using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Qemu;
using Hypercore.Drivers.Unikernel;
using Hypercore.GuestHealth;
using Hypercore.HostAccess;
using Hypercore.Images;
using Hypercore.Images.Integration;
using Hypercore.Networking;
using Hypercore.Operations;
using Hypercore.Reconciliation;
using Hypercore.Store.Kubernetes;
using Hypercore.Store.Kubernetes.NodeLifecycle;
using Hypercore.Store.Kubernetes.Snapshots;
using Hypercore.Store.Sqlite;
using Hypercore.Telemetry;
using Hypercore.Snapshots;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace Hypercore.Daemon.Hosting;

/// <summary>
/// The composition root: the SQLite or the Kubernetes store (<c>--store</c>), the QEMU, Firecracker, Cloud Hypervisor and unikernel drivers, driver registry, reconciler and the API, on two Kestrel
/// endpoints (gRPC over HTTP/2, HTTP/JSON over HTTP/1.1: without TLS there is no ALPN to share one port).
/// </summary>
public static partial class DaemonHost
{
    public const int ExitOk = 0;
    public const int ExitFailure = 1;
    public const int ExitBadSettings = 2;

    /// <summary>
    /// Runs until SIGTERM/SIGINT (or <paramref name="stop"/>). Prints "vistarad ready grpc=… http=…" on
    /// <paramref name="stdout"/> once both endpoints listen. VMs are left running on stop: the next start adopts them.
    /// </summary>
    public static Task<int> RunAsync(IReadOnlyDictionary<string, string?> settings, TextWriter stdout, TextWriter stderr, CancellationToken stop = default) =>
        RunAsync(settings, stdout, stderr, alterServices: null, stop);

    /// <param name="alterServices">Changes <see cref="Compose"/>'s services before the build: the benchmark node's driver (bench/Hypercore.BenchNode); null in vistarad.</param>
    internal static async Task<int> RunAsync(
        IReadOnlyDictionary<string, string?> settings, TextWriter stdout, TextWriter stderr, Action<IServiceCollection>? alterServices, CancellationToken stop)
    {
        // One daemon per state directory, decided before anything reads or writes in it.
        using var nodeLock = AcquireNodeLock(settings, out var lockProblem, out var heldByAnother);
        if (nodeLock is null && heldByAnother)
        {
            await stderr.WriteLineAsync("vistarad: invalid setting: " + lockProblem);
            return ExitBadSettings;
        }

        // A state directory that cannot even be created is reported by validation with every other bad setting;
        // without the lock the daemon never gets past validation.
        var endpoints = new BoundEndpoints();
        try
        {
            return await RunLockedAsync(settings, endpoints, stdout, stderr, nodeLock is null ? lockProblem : null, alterServices, stop);
        }
        finally
        {
            endpoints.RemoveSockets();
        }
    }

    private static async Task<int> RunLockedAsync(
        IReadOnlyDictionary<string, string?> settings, BoundEndpoints endpoints, TextWriter stdout, TextWriter stderr, string? lockProblem,
        Action<IServiceCollection>? alterServices, CancellationToken stop)
    {
        WebApplication app;
        try
        {
            app = Build(settings, endpoints, alterServices);
        }
        catch (SettingsException ex)
        {
            await stderr.WriteLineAsync("vistarad: " + ex.Message);
            return ExitBadSettings;
        }

        await using (app)
        {
            try
            {
                // Validate every option first: the host resolves hosted services (and so drivers and the store, whose
                // constructors read their options) before it runs the startup validators, which would report only
                // the first bad setting and only after opening the database.
                app.Services.GetService<IStartupValidator>()?.Validate();
                if (lockProblem is not null)
                {
                    await stderr.WriteLineAsync("vistarad: invalid setting: " + lockProblem);
                    return ExitBadSettings;
                }

                // Before the reconciler starts: adoption and the first starts already run at the daemon's priority.
                new ControlPlanePriority().ApplyConfigured(
                    app.Services.GetRequiredService<IOptions<DaemonOptions>>().Value.AutogroupNice,
                    app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Hypercore.Daemon"));
                await app.StartAsync(stop);
            }
            catch (Exception ex) when (BadSettings(ex) is { Count: > 0 } failures)
            {
                foreach (var failure in failures)
                {
                    await stderr.WriteLineAsync("vistarad: invalid setting: " + DaemonSettings.InUserTerms(failure));
                }

                return ExitBadSettings;
            }
            catch (IOException ex)
            {
                // Kestrel could not bind (address in use, address not on this host): a setting the user can fix.
                await stderr.WriteLineAsync(
                    $"vistarad: cannot listen on {DaemonSettings.GrpcEndpoint.Name} / {DaemonSettings.HttpEndpoint.Name}: {ex.Message}");
                return ExitBadSettings;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return ExitOk;
            }

            var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Hypercore.Daemon");
            var options = app.Services.GetRequiredService<IOptions<DaemonOptions>>().Value;
            var grpcUrl = endpoints.GrpcUrl();
            var httpUrl = endpoints.HttpUrl();
            LogListening(log, grpcUrl, httpUrl, options.StateDirectory, options.Store, options.DefaultProvider, options.NodeName);
            LogSecurity(app, log, options, endpoints);
            await stdout.WriteLineAsync($"vistarad ready grpc={grpcUrl} http={httpUrl}" + (endpoints.Socket is { } socket ? $" socket=unix://{socket}" : ""));
            await stdout.FlushAsync(CancellationToken.None);
            LogStartCost(log);
            using var trim = StartupMemoryTrim.Schedule(app.Services.GetRequiredService<TimeProvider>(), log);

            using var registration = stop.Register(() => app.Lifetime.StopApplication());
            await app.WaitForShutdownAsync(CancellationToken.None);
            LogStopped(log);
            return ExitOk;
        }
    }

    /// <summary>Builds the application from configuration key/value pairs (defaults &lt; TOML file &lt; flags, merged by the caller).</summary>
    internal static WebApplication Build(IReadOnlyDictionary<string, string?> settings, BoundEndpoints endpoints, Action<IServiceCollection>? alterServices = null)
    {
        var (builder, daemon) = Compose(settings, endpoints);
        alterServices?.Invoke(builder.Services);
        var app = builder.Build();
        app.UseApiSecurity();
        app.MapHypercoreApi(daemon.Reflection);
        app.MapHypercoreMetrics();
        return app;
    }

    /// <summary>The builder's only argument: the host setting that turns off appsettings.json's reload (and so its file watcher).</summary>
    private static readonly string[] NoConfigReload = ["--hostBuilder:reloadConfigOnChange=false"];

    /// <summary>The builder with every service registered (tests read the registrations from it).</summary>
    internal static (WebApplicationBuilder Builder, DaemonOptions Daemon) Compose(IReadOnlyDictionary<string, string?> settings, BoundEndpoints endpoints)
    {
        // No reload of appsettings.json: the builder otherwise adds it with a recursive FileSystemWatcher on the content
        // root (the binary's directory) while it is made, and clearing the sources below does not stop that watcher.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = NoConfigReload, ContentRootPath = AppContext.BaseDirectory });

        // Only our settings: no appsettings.json or ASPNETCORE_* variables changing endpoints behind the user's back.
        builder.Configuration.Sources.Clear();
        var normalized = SettingValues.Normalize(settings);
        DriverSettings.AddImplied(normalized);
        NodeDeviceAndConsoleSettings.AddImplied(normalized);
        builder.Configuration.AddInMemoryCollection(normalized);
        var daemon = builder.Configuration.GetSection(DaemonOptions.Section).Get<DaemonOptions>() ?? new DaemonOptions();
        daemon.StateDirectory = Path.IsPathFullyQualified(daemon.StateDirectory) ? daemon.StateDirectory : Path.GetFullPath(daemon.StateDirectory);

        ConfigureLogging(builder, daemon);
        var certificate = ServerCertificateFor(daemon);
        ConfigureKestrel(builder, daemon, endpoints, certificate);

        var services = builder.Services;
        services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        services.AddOptions<DaemonOptions>()
            .Bind(builder.Configuration.GetSection(DaemonOptions.Section))
            .PostConfigure(o => o.StateDirectory = daemon.StateDirectory)
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<DaemonOptions>>(_ => new SecuritySettingsValidator()); // factories: Hypercore.Composition.ServiceFactories

        services.AddSingleton(TimeProvider.System);
        if (daemon.Store == StoreKinds.Kubernetes)
        {
            // MicroVM custom resources: the API writes them too, so gRPC, vis and kubectl see the same objects.
            services.AddKubernetesStore(o =>
            {
                o.NodeName = daemon.NodeName;
                o.Kubeconfig = daemon.Kubeconfig;
                o.Namespace = daemon.KubeNamespace;
            });

            // Kubernetes issue 13: the Lease holder releases the MicroVMs of deleted (or long NotReady) nodes.
            services.AddNodeLifecycleController();
            services.AddOptions<NodeLifecycleOptions>().Bind(builder.Configuration.GetSection(NodeLifecycleOptions.Section));
            services.AddOptions<PlacementOptions>().Bind(builder.Configuration.GetSection(PlacementOptions.Section));

            // snapshots (issue 14): MicroVMSnapshot resources of this node's MicroVMs, taken through the SnapshotManager.
            services.AddMicroVmSnapshotController();
            services.AddOptions<MicroVmSnapshotOptions>().Bind(builder.Configuration.GetSection(MicroVmSnapshotOptions.Section));
        }
        else
        {
            services.AddSqliteStore(o =>
            {
                o.DatabasePath = daemon.DatabasePath;
                o.NodeName = daemon.NodeName;
            });
        }

        // One host-path policy for the API's early check and every driver's prepared-spec step.
        services.AddSingleton<IValidateOptions<DaemonOptions>>(_ => new HostAccessSettingsValidator());
        services.AddSingleton(new HostPathPolicy(HostAccessSettings.ToOptions(daemon)));

        // Each driver binds its own section (the driver flags map straight to it; see DriverSettings) and validates it;
        // the daemon adds only what it derives: the runtime directory under state-dir, the probe kernel it owns, and
        // one accelerator choice for every QEMU the node runs. A driver whose binary is missing is logged as not usable
        // at start, and a VM asking for it gets that in its status.
        services.AddQemuDriver(o =>
        {
            o.RuntimeDirectory = daemon.RuntimeDirectory("qemu");
            o.KvmProbeKernel = Path.Combine(daemon.ImageDirectory, "default", "vmlinuz");
            o.Accelerator = daemon.QemuAccelerator;
        });
        services.AddFirecrackerDriver(o => o.RuntimeDirectory = daemon.RuntimeDirectory(FirecrackerDriver.ProviderName));
        services.AddCloudHypervisorDriver(o => o.RuntimeDirectory = daemon.RuntimeDirectory(CloudHypervisorDriver.ProviderName));
        services.AddUnikernelDriver(o =>
        {
            o.RuntimeDirectory = daemon.RuntimeDirectory(UnikernelDriver.ProviderName);
            o.Accelerator = daemon.QemuAccelerator;
        });

        // The provider names come from the drivers registered above, not from a list kept here.
        services.AddSingleton<IValidateOptions<DaemonOptions>>(new DaemonOptionsValidator(services.RegisteredProviders()));
        services.AddSingleton(sp => new DriverRegistry(sp.GetServices<IHypervisorDriver>(), daemon.DefaultProvider));
        services.AddReconciler(o => o.NodeName = daemon.NodeName);
        services.AddOptions<ReconcilerOptions>().Bind(builder.Configuration.GetSection(ReconcilerOptions.Section));
        services.AddOptions<Informers.InformerOptions>().Bind(builder.Configuration.GetSection(Informers.InformerOptions.Section));
        services.AddMicroVmOperations(o => o.ImageDirectory = daemon.ImageDirectory);

        // Kubernetes issue 13: admission against the node's capacity (start step 100; Create refuses what never fits).
        services.AddAdmission();
        services.AddOptions<CapacityOptions>().Bind(builder.Configuration.GetSection(CapacityOptions.Section));
        services.AddOptions<ConsoleLogOptions>().Bind(builder.Configuration.GetSection(ConsoleLogOptions.Section));
        services.AddConsoleLogRotation(o => o.RunDirectory = Path.Combine(daemon.StateDirectory, "run")); // every driver's RuntimeDirectory is run/<provider>
        services.AddHypercoreApi();

        // Guest health (issue 14): readiness/liveness probes of running VMs.
        services.AddOptions<GuestHealthOptions>().Bind(builder.Configuration.GetSection(GuestHealthOptions.Section));
        services.AddGuestHealth();
        // snapshots: <state-dir>/snapshots, outside every VM's directory, so deleting a VM leaves its snapshots
        services.AddSnapshots(Path.Combine(daemon.StateDirectory, "snapshots"));
        services.AddHypercoreTelemetry(o =>
        {
            o.OtlpEndpoint = daemon.OtlpEndpoint;
            o.ServiceInstanceId = daemon.NodeName;
        });

        // Images (issue 11): OCI references in kernel.image / initrd.image / container_source are pulled into
        // <state-dir>/image-cache by the reconciler's images start step before a VM starts.
        services.AddImages(
            r => r.InsecureRegistries = ImagesSettings.InsecureList(daemon),
            c => c.Root = daemon.ImageCacheDirectory);
        services.AddSingleton<IValidateOptions<DaemonOptions>>(sp => new ImagesSettingsValidator(sp.GetRequiredService<IOptions<Images.Registry.RegistryOptions>>()));
        services.AddSingleton(ImagesSettings.AllowList(daemon)); // Create and the start step refuse other registries
        services.AddImagesStartStep();
        // Node networking (issue 12): the network start step always; the managed bridge's supervisor when it is on.
        var network = builder.Configuration.GetSection(NodeNetworkOptions.Section);
        var networkOptions = new NodeNetworkOptions();
        network.Bind(networkOptions);
        services.AddNodeNetworking(
            o =>
            {
                network.Bind(o);
                o.StateDirectory = Path.Combine(daemon.StateDirectory, "network");
            },
            managed: networkOptions.Managed);
        services.AddSingleton(networkOptions.HostNetworkPolicy()); // one policy for Create and the network start step

        AddSecurity(services, daemon, certificate);
        ClosedOptionsTypes.Add(services); // issue 15: start CPU of the AOT daemon
        return (builder, daemon);
    }

    /// <summary>ASP.NET Core's hosting diagnostics logger (per-request Activity and scope, start-up errors).</summary>
    internal const string HostingDiagnosticsCategory = "Microsoft.AspNetCore.Hosting.Diagnostics";

    private static void ConfigureLogging(WebApplicationBuilder builder, DaemonOptions daemon)
    {
        var level = DaemonOptionsValidator.TryParseLogLevel(daemon.LogLevel, out var parsed) ? parsed : LogLevel.Information;
        var logging = builder.Logging;
        logging.ClearProviders();
        logging.SetMinimumLevel(level);

        // ASP.NET Core's per-request chatter is noise at Information; it stays visible at Debug and below.
        logging.AddFilter("Microsoft.AspNetCore", level <= LogLevel.Debug ? level : LogLevel.Warning);
        logging.AddFilter("Grpc", level <= LogLevel.Debug ? level : LogLevel.Warning);
        if (daemon.LogFormat == "json")
        {
            logging.AddJsonConsole(o =>
            {
                o.UseUtcTimestamp = true;
                o.IncludeScopes = true; // carries TraceId/SpanId of the reconcile or request a line belongs to
            });
        }
        else
        {
            logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
            });

            if (level > LogLevel.Debug)
            {
                // Issue 15 (cpu11): while its logger is on at all, ASP.NET Core's hosting starts an Activity and a logging
                // scope for every request, only so that lines logged during the request carry its trace id, path and
                // connection as scope data. The text format prints no scopes, so here they cost every call ~1 KB of
                // allocation for nothing (bench/NOTES.md, cpu11). Above Debug its per-request lines were filtered out
                // already (Microsoft.AspNetCore at Warning, above); what it could still say is ASP.NET Core's own line
                // about a start-up or shutdown exception, and a failed start still ends the daemon with the exception
                // on stderr. Traces are unaffected: with --otlp-endpoint, the tracer's listener starts the Activity.
                logging.AddFilter(HostingDiagnosticsCategory, LogLevel.None);
            }
        }

        // stdout carries only the ready line (tests and the CLI read it); every log line goes to stderr.
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    }

    private static void ConfigureKestrel(WebApplicationBuilder builder, DaemonOptions daemon, BoundEndpoints endpoints, ServerCertificate? certificate)
    {
        // An endpoint that does not parse is left out here; options validation stops the daemon before Kestrel starts.
        var grpc = ListenEndpoint.Parse(daemon.GrpcEndpoint, out _);
        var http = ListenEndpoint.Parse(daemon.HttpEndpoint, out _);
        var tls = certificate is null ? null : new TlsListener(certificate, !string.IsNullOrWhiteSpace(daemon.TlsClientCa));
        BindUnixSocketsWithMode(builder, daemon);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = daemon.MaxRequestBody;
            if (grpc is not null)
            {
                endpoints.Grpc = (grpc, Listen(k, grpc, HttpProtocols.Http2, tls, endpoints));
            }

            if (http is not null)
            {
                endpoints.Http = (http, Listen(k, http, HttpProtocols.Http1, tls, endpoints));
            }

            if (daemon.SocketPath is { } socket && socket != grpc?.UnixPath && socket != http?.UnixPath)
            {
                // The node-local socket speaks gRPC (HTTP/2): vis and Hypercore.Client use it by default.
                ListenUnix(k, socket, HttpProtocols.Http2, endpoints);
                endpoints.Socket = socket;
            }
        });
    }

    private static ListenOptions Listen(
        KestrelServerOptions kestrel, ListenEndpoint endpoint, HttpProtocols protocols, TlsListener? tls, BoundEndpoints endpoints)
    {
        if (endpoint.UnixPath is { } path)
        {
            return ListenUnix(kestrel, path, protocols, endpoints);
        }

        ListenOptions? captured = null;
        void Configure(ListenOptions o)
        {
            // With TLS, ALPN lets one endpoint serve HTTP/1.1 and HTTP/2; without it each endpoint keeps one protocol.
            o.Protocols = tls is null ? protocols : HttpProtocols.Http1AndHttp2;
            tls?.Apply(o);
            captured = o;
        }

        endpoints.Tls = tls is not null;
        if (endpoint.IsLocalhost && endpoint.Port != 0)
        {
            kestrel.ListenLocalhost(endpoint.Port, Configure);
        }
        else if (endpoint.IsLocalhost)
        {
            kestrel.Listen(IPAddress.Loopback, 0, Configure); // Kestrel cannot pick a dynamic port for "localhost"
        }
        else
        {
            kestrel.Listen(endpoint.Address!, endpoint.Port, Configure);
        }

        return captured!;
    }

    private static List<string> BadSettings(Exception ex) => ex switch
    {
        OptionsValidationException v => v.Failures.ToList(),
        AggregateException a => a.InnerExceptions.SelectMany(BadSettings).ToList(),
        _ => [],
    };

    [LoggerMessage(9000, LogLevel.Information, "listening: gRPC {Grpc} (HTTP/2), HTTP/JSON {Http} (HTTP/1.1); state {StateDir}; store {Store}; default provider {Provider}; node {Node}")]
    private static partial void LogListening(ILogger log, string grpc, string http, string stateDir, string store, string provider, string node);

    [LoggerMessage(9001, LogLevel.Information, "stopped; running VMs were left running and will be adopted at the next start")]
    private static partial void LogStopped(ILogger log);
}

/// <summary>The listen options Kestrel was given, read back after start for the ports actually bound.</summary>
internal sealed class BoundEndpoints
{
    private readonly List<string> _sockets = [];

    /// <summary>The node-local Unix socket, when it is not one of the two endpoints.</summary>
    public string? Socket { get; set; }

    public bool Tls { get; set; }

    /// <summary>Records a Unix socket this daemon bound, removed again when it stops.</summary>
    public void AddSocket(string path)
    {
        lock (_sockets)
        {
            _sockets.Add(path);
        }
    }

    public void RemoveSockets()
    {
        lock (_sockets)
        {
            foreach (var path in _sockets)
            {
                try
                {
                    File.Delete(path);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // left behind; the next start replaces a stale socket (it holds the node lock)
                }
            }

            _sockets.Clear();
        }
    }

    public (ListenEndpoint Requested, ListenOptions Options)? Grpc { get; set; }

    public (ListenEndpoint Requested, ListenOptions Options)? Http { get; set; }

    public string GrpcUrl() => Url(Grpc);

    public string HttpUrl() => Url(Http);

    private string Url((ListenEndpoint Requested, ListenOptions Options)? endpoint)
    {
        if (endpoint is not { } e)
        {
            return "";
        }

        var port = e.Options.IPEndPoint?.Port ?? e.Requested.Port;
        var tls = Tls && e.Requested.UnixPath is null;
        return e.Requested.IsLocalhost && e.Requested.Port == 0
            ? $"{(tls ? "https" : "http")}://127.0.0.1:{port}"
            : e.Requested.Url(port, tls);
    }
}

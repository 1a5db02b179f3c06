using System.Diagnostics.CodeAnalysis;
using Grpc.AspNetCore.HealthChecks;
using Grpc.AspNetCore.Server;
using Hypercore.Admission;
using Hypercore.Api;
using Hypercore.Api.Security;
using Hypercore.Consoles;
using Hypercore.Daemon.Configuration;
using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Qemu;
using Hypercore.Drivers.Unikernel;
using Hypercore.GuestHealth;
using Hypercore.Images.Cache;
using Hypercore.Images.Registry;
using Hypercore.Informers;
using Hypercore.Networking;
using Hypercore.Operations;
using Hypercore.Reconciliation;
using Hypercore.Store.Sqlite;
using Hypercore.Telemetry;
using Microsoft.AspNetCore.HostFiltering;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace Hypercore.Daemon.Hosting;

/// <summary>
/// Issue 15, start CPU of the Native AOT daemon: the options types read at start, with the Options library's types
/// closed over each of them here, where the AOT compiler sees them.
/// </summary>
/// <remarks>
/// Microsoft.Extensions.Options registers <c>IOptions&lt;&gt;</c>, <c>IOptionsMonitor&lt;&gt;</c>,
/// <c>IOptionsFactory&lt;&gt;</c> and <c>IOptionsMonitorCache&lt;&gt;</c> as open generics; DI closes them over each
/// options type at run time (<c>MakeGenericType</c>), and so do the arrays it builds for the factory's
/// <c>IEnumerable&lt;IConfigureOptions&lt;T&gt;&gt;</c> and friends. The AOT compiler cannot know those
/// instantiations, so the runtime's type loader built each type from templates at start (about 8 per options type,
/// ~50 options types: perf, bench/NOTES.md). A closed registration of the same implementation types is preferred by DI
/// over the open one and behaves the same: <c>IOptions&lt;T&gt;</c> is <see cref="OptionsManager{TOptions}"/> (a
/// lazily created, cached unnamed value, as the library's internal UnnamedOptionsManager), the others are the
/// library's own registrations with the same lifetimes.
/// </remarks>
internal static class ClosedOptionsTypes
{
    public static void Add(IServiceCollection services)
    {
        // Ours: every options type the daemon validates at start (ValidateOnStart resolves each one's monitor).
        Add<DaemonOptions>(services);
        Add<ReconcilerOptions>(services);
        Add<InformerOptions>(services);
        Add<MicroVmOperationsOptions>(services);
        Add<CapacityOptions>(services);
        Add<ConsoleLogOptions>(services);
        Add<GuestHealthOptions>(services);
        Add<HypercoreApiOptions>(services);
        Add<ApiSecurityOptions>(services);
        Add<HypercoreTelemetryOptions>(services);
        Add<NodeNetworkOptions>(services);
        Add<RegistryOptions>(services);
        Add<ImageCacheOptions>(services);
        Add<SqliteStoreOptions>(services);
        Add<QemuOptions>(services);
        Add<FirecrackerOptions>(services);
        Add<CloudHypervisorOptions>(services);
        Add<UnikernelOptions>(services);

        // The host's, Kestrel's, logging's and gRPC's public ones read at start.
        Add<HostOptions>(services);
        Add<ConsoleLifetimeOptions>(services);
        Add<KestrelServerOptions>(services);
        Add<SocketTransportOptions>(services);
        Add<RouteOptions>(services);
        Add<HostFilteringOptions>(services);
        Add<LoggerFilterOptions>(services);
        Add<LoggerFactoryOptions>(services);
        Add<ConsoleLoggerOptions>(services);
        Add<ConsoleFormatterOptions>(services);
        Add<SimpleConsoleFormatterOptions>(services);
        Add<JsonConsoleFormatterOptions>(services);
        Add<GrpcServiceOptions>(services);
        Add<GrpcHealthChecksOptions>(services);
        Add<HealthCheckServiceOptions>(services);
        Add<HealthCheckPublisherOptions>(services);
        Add<GrpcServiceOptions<Api.MicroVms.VmServiceImpl>>(services);
        Add<GrpcServiceOptions<Api.Vistara.VistaraServiceImpl>>(services);
        Add<GrpcServiceOptions<Api.Flintlock.FlintlockMicroVmService>>(services);
        Add<GrpcServiceOptions<Api.Images.ImageServiceImpl>>(services);
        Add<GrpcServiceOptions<Api.Node.NodeServiceImpl>>(services);
        Add<GrpcServiceOptions<Api.Snapshots.SnapshotServiceImpl>>(services);
        Add<GrpcServiceOptions<Grpc.Reflection.ReflectionServiceImpl>>(services);
        Add<GrpcServiceOptions<Grpc.Reflection.ReflectionV1ServiceImpl>>(services);

        // Issue 15, idle RSS (bench/NOTES.md, rss4): the public ones DI still closed at start after the above.
        Add<Microsoft.AspNetCore.Http.Features.FormOptions>(services);
        Add<RouteHandlerOptions>(services);
        Add<Microsoft.Extensions.Diagnostics.Metrics.MetricsOptions>(services);
        Add<OpenTelemetry.Exporter.PrometheusAspNetCoreOptions>(services);
    }

    private static void Add<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)] T>(IServiceCollection services)
        where T : class
    {
        // TryAdd: a closed registration someone made on purpose stays. Factories, not implementation types (issue 15,
        // idle RSS): DI calls the constructor DI would pick (the longest: OptionsFactory's with the validators) without
        // reflecting over it, and the Native AOT daemon keeps no constructor, parameter and invoker caches for these
        // ~170 services (bench/NOTES.md, rss4). Factory-made disposables (OptionsMonitor) are disposed by the provider too.
        services.TryAdd(ServiceDescriptor.Singleton<IOptions<T>>(sp => new OptionsManager<T>(sp.GetRequiredService<IOptionsFactory<T>>())));
        services.TryAdd(ServiceDescriptor.Singleton<IOptionsMonitor<T>>(sp => new OptionsMonitor<T>(
            sp.GetRequiredService<IOptionsFactory<T>>(),
            sp.GetServices<IOptionsChangeTokenSource<T>>(),
            sp.GetRequiredService<IOptionsMonitorCache<T>>())));
        services.TryAdd(ServiceDescriptor.Transient<IOptionsFactory<T>>(sp => new OptionsFactory<T>(
            sp.GetServices<IConfigureOptions<T>>(),
            sp.GetServices<IPostConfigureOptions<T>>(),
            sp.GetServices<IValidateOptions<T>>())));
        services.TryAdd(ServiceDescriptor.Singleton<IOptionsMonitorCache<T>>(_ => new OptionsCache<T>()));
        GC.KeepAlive(Arrays<T>.Types);
    }

    /// <summary>The array types DI creates for the factory's and the monitor's IEnumerable parameters.</summary>
    private static class Arrays<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)] T>
        where T : class
    {
        public static readonly Array[] Types =
        [
            Array.Empty<IConfigureOptions<T>>(),
            Array.Empty<IPostConfigureOptions<T>>(),
            Array.Empty<IValidateOptions<T>>(),
            Array.Empty<IOptionsChangeTokenSource<T>>(),
        ];
    }
}

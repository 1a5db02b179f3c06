using Hypercore.Admission;
using Hypercore.Api.Errors;
using Hypercore.Api.Security;
using Hypercore.Consoles;
using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Qemu;
using Hypercore.Drivers.Unikernel;
using Hypercore.GuestHealth;
using Hypercore.Images.Cache;
using Hypercore.Images.Integration;
using Hypercore.Informers;
using Hypercore.Networking;
using Hypercore.Operations;
using Hypercore.Reconciliation;
using Hypercore.Snapshots;
using Hypercore.Store.Kubernetes;
using Hypercore.Store.Kubernetes.NodeLifecycle;
using Hypercore.Store.Kubernetes.Snapshots;
using Hypercore.Store.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Hypercore.Daemon.Hosting;

/// <summary>
/// Issue 15, start CPU of the Native AOT daemon: <c>ILogger&lt;T&gt;</c> closed over the daemon's own classes, where
/// the AOT compiler sees it (the same reason as <see cref="ClosedOptionsTypes"/>).
/// </summary>
/// <remarks>
/// AddLogging registers <c>ILogger&lt;&gt;</c> → <c>Logger&lt;&gt;</c> open; DI closes it over each class at run time
/// (<c>MakeGenericType</c>), which the AOT runtime's type loader builds from templates at start. The closed
/// registration is the same singleton <see cref="Logger{T}"/> over the same <see cref="ILoggerFactory"/>, so the
/// category (the class's full name), filters and providers are unchanged.
/// </remarks>
internal static class ClosedLoggerTypes
{
    public static void Add(IServiceCollection services)
    {
        Add<AdmissionStep>(services);
        Add<AdmissionRequeue>(services);
        Add<ApiSecurityMiddleware>(services);
        Add<StoreExceptionInterceptor>(services);
        Add<ConsoleLogRotator>(services);
        Add<GuestHealthHost>(services);
        Add<GuestHealthMonitor>(services);
        Add<ImageCache>(services);
        Add<ImagesStartStep>(services);
        Add<MicroVmInformer>(services);
        Add<MicroVmOperations>(services);
        Add<Reconciler>(services);
        Add<ReconcilerHost>(services);
        Add<SnapshotManager>(services);
        Add<SnapshotRestoreStep>(services);
        Add<SnapshotStartup>(services);
        Add<NodeNetwork>(services);
        Add<NetworkStartStep>(services);
        Add<NetworkSupervisor>(services);
        Add<SqliteMicroVmStore>(services);
        Add<KubernetesMicroVmStore>(services);
        Add<NodeLifecycleController>(services);
        Add<MicroVmSnapshotController>(services);
        Add<QemuDriver>(services);
        Add<FirecrackerDriver>(services);
        Add<CloudHypervisorDriver>(services);
        Add<UnikernelDriver>(services);
    }

    // TryAdd: a closed registration someone made on purpose stays.
    private static void Add<T>(IServiceCollection services) =>
        services.TryAddSingleton<ILogger<T>, Logger<T>>();
}

using Hypercore.Admission;
using Hypercore.Operations;
using System.Net;
using Hypercore.Api;
using Hypercore.Benchmarks.NoOp;
using Hypercore.Benchmarks.Runner;
using Hypercore.Drivers;
using Hypercore.Reconciliation;
using Hypercore.Store.Sqlite;
using Hypercore.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Hypercore.Benchmarks.Api;

/// <summary>
/// The daemon's composition in this process (SQLite store, reconciler, API, telemetry, Kestrel HTTP/2 on
/// loopback) with the hypervisor driver replaced by <see cref="NoOpDriver"/>: the benchmark measures the controller.
/// </summary>
public sealed class InProcessNode : IAsyncDisposable
{
    private readonly WebApplication _app;

    private InProcessNode(WebApplication app, string grpcAddress, string kernelPath, NoOpDriver driver)
    {
        _app = app;
        GrpcAddress = grpcAddress;
        KernelPath = kernelPath;
        Driver = driver;
    }

    public string GrpcAddress { get; }

    /// <summary>A kernel file that exists, so specs pass the API's validation.</summary>
    public string KernelPath { get; }

    public NoOpDriver Driver { get; }

    public IServiceProvider Services => _app.Services;

    public ReconcilerHost? Reconciler => _app.Services.GetService<ReconcilerHost>();

    /// <param name="admission">Adds the daemon's admission start step (issue 15 pipeline), with a capacity no benchmark fills.</param>
    public static async Task<InProcessNode> StartAsync(string directory, bool reconciler, bool api = true, bool allRunning = false, bool admission = false)
    {
        var kernel = Path.Combine(directory, "vmlinuz");
        await File.WriteAllTextAsync(kernel, "kernel");
        var driver = new NoOpDriver("qemu", allRunning);
        ListenOptions? grpc = null;
        var builder = NodeHost.CreateWebBuilder(); // the daemon's content root, no configuration file, no file watcher
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            if (api)
            {
                k.Listen(IPAddress.Loopback, 0, o => (o.Protocols, grpc) = (HttpProtocols.Http2, o));
            }
        });
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSqliteStore(o =>
        {
            o.DatabasePath = Path.Combine(directory, "hypercore.db");
            o.NodeName = "bench";
        });
        builder.Services.AddSingleton(new DriverRegistry([driver], "qemu"));
        if (reconciler)
        {
            builder.Services.AddReconciler(o => o.NodeName = "bench");
            if (admission)
            {
                builder.Services.AddAdmission(o => (o.MemoryMb, o.Cpus) = (1L << 30, 1 << 20));
            }
        }

        builder.Services.AddMicroVmOperations(o => o.ImageDirectory = Path.Combine(directory, "images"));
        builder.Services.AddHypercoreApi();
        builder.Services.AddHypercoreTelemetry(o => o.ServiceInstanceId = "bench");
        var app = builder.Build();
        app.MapHypercoreApi();
        app.MapHypercoreMetrics();
        await app.StartAsync();
        return new InProcessNode(app, grpc is null ? "" : $"http://127.0.0.1:{grpc.IPEndPoint!.Port}", kernel, driver);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

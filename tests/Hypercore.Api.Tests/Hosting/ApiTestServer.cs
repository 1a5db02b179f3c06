using Hypercore.Operations;
using System.Net;
using Grpc.Net.Client;
using Hypercore.Api.MicroVms;
using Hypercore.Api.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Hypercore.Api.Tests.Hosting;

/// <summary>
/// The API on a real Kestrel: gRPC on an HTTP/2 port and HTTP/JSON on an HTTP/1.1 port, both 127.0.0.1 with
/// ports picked by the OS. Real SQLite store in a temp directory (wrapped for fault injection), fake drivers named
/// "qemu" (can pause) and "unikernel" (cannot), so no hypervisor ever starts. Dispose removes everything.
/// </summary>
public sealed class ApiTestServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly IAsyncDisposable? _storeOwner;

    private ApiTestServer(WebApplication app, DirectoryInfo root, FaultInjectingStore store, IAsyncDisposable? storeOwner,
        IReadOnlyList<FakeDriver> drivers, string grpcAddress, string httpAddress)
    {
        _app = app;
        _storeOwner = storeOwner;
        Root = root;
        Store = store;
        Drivers = drivers;
        GrpcAddress = grpcAddress;
        Channel = GrpcChannel.ForAddress(grpcAddress);
        Http = new HttpClient { BaseAddress = new Uri(httpAddress), Timeout = TimeSpan.FromSeconds(60) };
    }

    public DirectoryInfo Root { get; }

    public string ImageDirectory => Path.Combine(Root.FullName, "images");

    public FaultInjectingStore Store { get; }

    public IReadOnlyList<FakeDriver> Drivers { get; }

    public string GrpcAddress { get; }

    public GrpcChannel Channel { get; }

    public HttpClient Http { get; }

    public Contracts.VmApi.VMService.VMServiceClient Vms => new(Channel);

    public Contracts.Vistara.Vistara.VistaraClient Vistara => new(Channel);

    public IServiceProvider Services => _app.Services;

    public static async Task<ApiTestServer> StartAsync(
        Action<MicroVmOperationsOptions>? configure = null,
        Action<IServiceCollection>? services = null)
    {
        var root = Directory.CreateTempSubdirectory("hypercore-api-tests-");
        Directory.CreateDirectory(Path.Combine(root.FullName, "images"));
        var (inner, owner) = await TestStores.CreateAsync(root.FullName);
        var store = new FaultInjectingStore(inner);
        var drivers = new List<FakeDriver>
        {
            new("qemu", DriverCapabilities.Pause | DriverCapabilities.GracefulStop | DriverCapabilities.Tap | DriverCapabilities.Initrd | DriverCapabilities.BlockDevices),
            new("unikernel", DriverCapabilities.GracefulStop),
        };

        foreach (var driver in drivers)
        {
            driver.RuntimeDirectory = Path.Combine(root.FullName, "run", driver.Name);
        }

        ListenOptions? grpc = null, http = null;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0, o => (o.Protocols, grpc) = (HttpProtocols.Http2, o));
            k.Listen(IPAddress.Loopback, 0, o => (o.Protocols, http) = (HttpProtocols.Http1, o));
        });
        builder.Services.AddSingleton<IMicroVmStore>(store);
        builder.Services.AddSingleton(new DriverRegistry(drivers, "qemu"));
        builder.Services.AddMicroVmOperations(o =>
        {
            o.ImageDirectory = Path.Combine(root.FullName, "images");
            configure?.Invoke(o);
        });
        builder.Services.AddHypercoreApi(o => o.LogPollInterval = TimeSpan.FromMilliseconds(50));
        services?.Invoke(builder.Services);
        var app = builder.Build();
        app.MapHypercoreApi();
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            if (owner is not null)
            {
                await owner.DisposeAsync();
            }

            root.Delete(recursive: true);
            throw;
        }

        return new ApiTestServer(app, root, store, owner, drivers,
            $"http://127.0.0.1:{grpc!.IPEndPoint!.Port}", $"http://127.0.0.1:{http!.IPEndPoint!.Port}");
    }

    /// <summary>Everything in the store, read past the fault injection (to prove what was or was not written).</summary>
    public Task<IReadOnlyList<MicroVm>> StoredAsync() => Store.Inner.ListAsync();

    /// <summary>Creates an image directory with the given files (each a few bytes, or <paramref name="rootfsBytes"/> for rootfs.img).</summary>
    public string AddImage(string name, bool initrd = false, long? rootfsBytes = null)
    {
        var dir = Directory.CreateDirectory(Path.Combine(ImageDirectory, name)).FullName;
        File.WriteAllText(Path.Combine(dir, "vmlinuz"), "kernel");
        if (initrd)
        {
            File.WriteAllText(Path.Combine(dir, "initrd.img"), "initrd");
        }

        if (rootfsBytes is { } size)
        {
            using var f = File.Create(Path.Combine(dir, "rootfs.img"));
            f.SetLength(size);
        }

        return dir;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        Channel.Dispose();
        using (var stopTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            await _app.StopAsync(stopTimeout.Token);
        }

        await _app.DisposeAsync();
        if (_storeOwner is not null)
        {
            await _storeOwner.DisposeAsync();
        }

        try
        {
            Root.Delete(recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}

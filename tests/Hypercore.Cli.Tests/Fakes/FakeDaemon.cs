using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Hypercore.Cli.Tests.Fakes;

/// <summary><see cref="FakeVmService"/> served by Kestrel on 127.0.0.1 (a free port), HTTP/2 without TLS, like vistarad.</summary>
public sealed class FakeDaemon : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FakeDaemon(WebApplication app, FakeVmService service, string host)
    {
        _app = app;
        Service = service;
        Host = host;
    }

    public FakeVmService Service { get; }

    public FakeSnapshotService Snapshots { get; private init; } = null!;

    /// <summary>"127.0.0.1:port", what --host takes.</summary>
    public string Host { get; }

    public static async Task<FakeDaemon> StartAsync(TimeProvider time)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        var service = new FakeVmService(time);
        builder.Services.AddSingleton(service);
        var snapshots = new FakeSnapshotService(time); // snapshots
        builder.Services.AddSingleton(snapshots);
        var app = builder.Build();
        app.MapGrpcService<FakeVmService>();
        app.MapGrpcService<FakeSnapshotService>();
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single());
        return new FakeDaemon(app, service, $"127.0.0.1:{address.Port}") { Snapshots = snapshots };
    }

    public async ValueTask DisposeAsync()
    {
        Service.EndWatches();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

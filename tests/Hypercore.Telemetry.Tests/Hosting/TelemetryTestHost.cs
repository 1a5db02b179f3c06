using Hypercore.Operations;
using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Grpc.Net.Client;
using Hypercore.Api;
using Hypercore.Drivers;
using Hypercore.Reconciliation;
using Hypercore.Store;
using Hypercore.Core.Tests.Fakes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Hypercore.Telemetry.Tests.Hosting;

/// <summary>
/// The daemon's composition minus infrastructure: real Kestrel on 127.0.0.1 (gRPC on an HTTP/2 port, HTTP/JSON and
/// /metrics on an HTTP/1.1 port), the real API, reconciler and telemetry, with the in-memory store and a fake
/// driver named "qemu". Dispose stops everything and removes the temp directory.
/// </summary>
internal sealed partial class TelemetryTestHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TelemetryTestHost(WebApplication app, DirectoryInfo root, InMemoryStore store, FakeDriver driver, string grpc, string http)
    {
        _app = app;
        Root = root;
        Store = store;
        Driver = driver;
        Channel = GrpcChannel.ForAddress(grpc);
        Http = new HttpClient { BaseAddress = new Uri(http), Timeout = TimeSpan.FromSeconds(60) };
    }

    public DirectoryInfo Root { get; }

    public InMemoryStore Store { get; }

    public FakeDriver Driver { get; }

    public GrpcChannel Channel { get; }

    public HttpClient Http { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>A kernel file that exists, for specs that must pass the API's validation.</summary>
    public string KernelPath => Path.Combine(Root.FullName, "vmlinuz");

    public static async Task<TelemetryTestHost> StartAsync(Action<HypercoreTelemetryOptions>? telemetry = null, Action<IServiceCollection>? services = null)
    {
        var root = Directory.CreateTempSubdirectory("hypercore-telemetry-tests-");
        File.WriteAllText(Path.Combine(root.FullName, "vmlinuz"), "kernel");
        var store = new InMemoryStore();
        var driver = new FakeDriver("qemu");
        ListenOptions? grpc = null, http = null;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0, o => (o.Protocols, grpc) = (HttpProtocols.Http2, o));
            k.Listen(IPAddress.Loopback, 0, o => (o.Protocols, http) = (HttpProtocols.Http1, o));
        });
        builder.Services.AddSingleton<IMicroVmStore>(store);
        builder.Services.AddSingleton(new DriverRegistry([driver], "qemu"));
        builder.Services.AddReconciler(o =>
        {
            o.NodeName = "node-a";
            o.PollInterval = TimeSpan.FromMinutes(5); // no background polls muddying the counts
        });
        builder.Services.AddMicroVmOperations(o => o.ImageDirectory = Path.Combine(root.FullName, "images"));
        builder.Services.AddHypercoreApi();
        builder.Services.AddHypercoreTelemetry(telemetry);
        services?.Invoke(builder.Services);
        var app = builder.Build();
        app.MapHypercoreApi();
        app.MapHypercoreMetrics();
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            root.Delete(recursive: true);
            throw;
        }

        return new TelemetryTestHost(app, root, store, driver, $"http://127.0.0.1:{grpc!.IPEndPoint!.Port}", $"http://127.0.0.1:{http!.IPEndPoint!.Port}");
    }

    /// <summary>GET /metrics as text.</summary>
    public async Task<string> ScrapeAsync(string path = "/metrics")
    {
        using var response = await Http.GetAsync(path);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsStringAsync();
    }

    /// <summary>The value of one sample line (name plus the labels given, in any order), or null when absent.</summary>
    public static double? Sample(string scrape, string name, params (string Label, string Value)[] labels)
    {
        foreach (Match m in SampleLine().Matches(scrape))
        {
            if (m.Groups["name"].Value != name)
            {
                continue;
            }

            var text = m.Groups["labels"].Value;
            if (labels.All(l => text.Contains($"{l.Label}=\"{l.Value}\"", StringComparison.Ordinal)))
            {
                return double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    /// <summary>Polls <paramref name="condition"/> on fresh scrapes (the exporter may cache a scrape briefly).</summary>
    public async Task<string> ScrapeUntilAsync(Func<string, bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        string last;
        do
        {
            last = await ScrapeAsync();
            if (condition(last))
            {
                return last;
            }

            await Task.Delay(100);
        }
        while (DateTime.UtcNow < deadline);

        return last;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        Channel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Root.Delete(recursive: true);
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>[^ \n]+)", RegexOptions.Multiline)]
    private static partial Regex SampleLine();
}

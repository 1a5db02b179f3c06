using System.Runtime.Versioning;
using System.Text.Json;
using Hypercore.Daemon.Configuration;
using Hypercore.Daemon.Hosting;
using Hypercore.Drivers.Qemu;
using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// Issue 15, start CPU: the daemon registers the Options library's types closed over its options types
/// (Daemon/Hosting/ClosedOptionsTypes) so the Native AOT compiler precompiles them. What the options resolve to must
/// be what the library's open-generic registrations gave: same values, same validation failures, separate instances.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class ClosedOptionsTypesTests
{
    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-closed-options-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    [Test]
    public async Task Build_ResolvesOptionsThroughTheClosedTypes_WithTheConfiguredValues()
    {
        await using var app = DaemonHost.Build(new Dictionary<string, string?>
        {
            ["Daemon:StateDirectory"] = _dir.FullName,
            ["Daemon:GrpcEndpoint"] = "127.0.0.1:0",
            ["Daemon:HttpEndpoint"] = "127.0.0.1:0",
            ["Reconciler:Workers"] = "7",
        }, new BoundEndpoints());

        app.Services.GetRequiredService<IOptions<DaemonOptions>>().Should().BeOfType<OptionsManager<DaemonOptions>>()
            .Which.Value.StateDirectory.Should().Be(_dir.FullName);
        app.Services.GetRequiredService<IOptionsMonitor<ReconcilerOptions>>().Should().BeOfType<OptionsMonitor<ReconcilerOptions>>()
            .Which.CurrentValue.Workers.Should().Be(7);
        app.Services.GetRequiredService<IOptions<ReconcilerOptions>>().Value.Workers.Should().Be(7);
        app.Services.GetRequiredService<IOptionsFactory<QemuOptions>>().Should().BeOfType<OptionsFactory<QemuOptions>>();
    }

    [TestCase(9, "node-a")]
    [TestCase(0, "node-a")] // Workers out of range: validation fails
    [TestCase(3, "")] // NodeName empty: validation fails
    public void ClosedTypes_SameValuesAndFailuresAsTheOpenGenerics(int workers, string node)
    {
        using var open = Provider(workers, node, closed: false);
        using var closed = Provider(workers, node, closed: true);

        Read(closed).Should().Be(Read(open));
        closed.GetRequiredService<IOptions<ReconcilerOptions>>().Should().BeOfType<OptionsManager<ReconcilerOptions>>();
        open.GetRequiredService<IOptions<ReconcilerOptions>>().Should().NotBeOfType<OptionsManager<ReconcilerOptions>>();
    }

    [Test]
    public void ClosedTypes_OptionsAndMonitor_AreSeparateCachedValues_AsWithTheOpenGenerics()
    {
        foreach (var closed in new[] { false, true })
        {
            using var provider = Provider(5, "n", closed);
            var options = provider.GetRequiredService<IOptions<ReconcilerOptions>>();
            var monitor = provider.GetRequiredService<IOptionsMonitor<ReconcilerOptions>>();

            options.Value.Should().BeSameAs(options.Value);
            monitor.CurrentValue.Should().BeSameAs(monitor.CurrentValue);
            options.Value.Should().NotBeSameAs(monitor.CurrentValue, "closed={0}", closed);
        }
    }

    private static ServiceProvider Provider(int workers, string node, bool closed)
    {
        var services = new ServiceCollection();
        services.AddReconciler(o => o.NodeName = node);
        services.Configure<ReconcilerOptions>(o => o.Workers = workers);
        services.PostConfigure<ReconcilerOptions>(o => o.ResyncInterval = TimeSpan.FromSeconds(workers + 1));
        if (closed)
        {
            ClosedOptionsTypes.Add(services);
        }

        return services.BuildServiceProvider();
    }

    /// <summary>Both ways of reading the options, as text: the values, or the validation failures.</summary>
    private static string Read(ServiceProvider provider)
    {
        string One(Func<ReconcilerOptions> read)
        {
            try
            {
                return JsonSerializer.Serialize(read());
            }
            catch (OptionsValidationException ex)
            {
                return "invalid: " + string.Join("; ", ex.Failures);
            }
        }

        return One(() => provider.GetRequiredService<IOptions<ReconcilerOptions>>().Value) + " | " +
            One(() => provider.GetRequiredService<IOptionsMonitor<ReconcilerOptions>>().CurrentValue) + " | " +
            One(() => provider.GetRequiredService<IOptionsMonitor<ReconcilerOptions>>().Get("other"));
    }
}

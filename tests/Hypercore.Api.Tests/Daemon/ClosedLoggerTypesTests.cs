using System.Reflection;
using System.Runtime.Versioning;
using Hypercore.Daemon.Hosting;
using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// Issue 15, start CPU: the daemon registers <c>ILogger&lt;T&gt;</c> closed over its own classes
/// (Daemon/Hosting/ClosedLoggerTypes) so the Native AOT compiler precompiles them. The loggers must be what the open
/// registration gave: a <see cref="Logger{T}"/> of the same factory, under the class's full name as category.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class ClosedLoggerTypesTests
{
    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-closed-loggers-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    [Test]
    public async Task Build_ResolvesTheDaemonsLoggersAsLoggerOfT()
    {
        await using var app = DaemonHost.Build(new Dictionary<string, string?>
        {
            ["Daemon:StateDirectory"] = _dir.FullName,
            ["Daemon:GrpcEndpoint"] = "127.0.0.1:0",
            ["Daemon:HttpEndpoint"] = "127.0.0.1:0",
        }, new BoundEndpoints());

        app.Services.GetRequiredService<ILogger<ReconcilerHost>>().Should().BeOfType<Logger<ReconcilerHost>>();
        app.Services.GetRequiredService<ILogger<ReconcilerHost>>()
            .Should().BeSameAs(app.Services.GetRequiredService<ILogger<ReconcilerHost>>(), "a singleton, as before");
    }

    [Test]
    public void ClosedLogger_LogsUnderTheClassesFullName_ThroughTheSameFactory()
    {
        foreach (var closed in new[] { false, true })
        {
            var provider = new RecordingProvider();
            var services = new ServiceCollection();
            services.AddLogging(b => b.AddProvider(provider).SetMinimumLevel(LogLevel.Information));
            if (closed)
            {
                ClosedLoggerTypes.Add(services);
            }

            services.Any(d => d.ServiceType == typeof(ILogger<Reconciler>)).Should().Be(closed);
            using var sp = services.BuildServiceProvider();
            var log = sp.GetRequiredService<ILogger<Reconciler>>();
            log.LogInformation("hello");
            log.LogDebug("filtered out");

            log.Should().BeOfType<Logger<Reconciler>>();
            provider.Entries.Should().Equal(("Hypercore.Reconciliation.Reconciler", "hello"));
        }
    }

    [Test]
    public void ClosedLoggerTypes_KeepsAnExplicitRegistration()
    {
        var mine = new Logger<Reconciler>(new LoggerFactory());
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<ILogger<Reconciler>>(mine);
        ClosedLoggerTypes.Add(services);

        using var sp = services.BuildServiceProvider();
        sp.GetRequiredService<ILogger<Reconciler>>().Should().BeSameAs(mine);
    }

    [Test]
    public void ClosedLoggerTypes_CoversEveryILoggerOfTInOurConstructors()
    {
        var services = new ServiceCollection();
        ClosedLoggerTypes.Add(services);
        var closed = services.Select(d => d.ServiceType).ToHashSet();

        var assemblies = new[]
        {
            typeof(Reconciler), typeof(Hypercore.Api.Errors.StoreExceptionInterceptor),
            typeof(Hypercore.Store.Sqlite.SqliteMicroVmStore), typeof(Hypercore.Store.Kubernetes.KubernetesMicroVmStore),
            typeof(Hypercore.Drivers.Qemu.QemuDriver), typeof(Hypercore.Drivers.Firecracker.FirecrackerDriver),
            typeof(Hypercore.Drivers.CloudHypervisor.CloudHypervisorDriver), typeof(Hypercore.Drivers.Unikernel.UnikernelDriver),
            typeof(Hypercore.Networking.NodeNetwork), typeof(Hypercore.Images.Cache.ImageCache),
        }.Select(t => t.Assembly).Distinct();
        var wanted = assemblies
            .SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetConstructors(BindingFlags.Public | BindingFlags.Instance))
            .SelectMany(c => c.GetParameters())
            .Select(p => p.ParameterType)
            .Where(p => p.IsGenericType && p.GetGenericTypeDefinition() == typeof(ILogger<>))
            .Distinct()
            .ToList();

        wanted.Should().NotBeEmpty();
        wanted.Should().OnlyContain(t => closed.Contains(t), "a new class logging through ILogger<T> belongs in ClosedLoggerTypes");
    }

    private sealed class RecordingProvider : ILoggerProvider
    {
        public List<(string Category, string Message)> Entries { get; } = [];

        public ILogger CreateLogger(string categoryName) => new Recorder(categoryName, Entries);

        public void Dispose()
        {
        }

        private sealed class Recorder(string category, List<(string, string)> entries) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                entries.Add((category, formatter(state, exception)));
        }
    }
}

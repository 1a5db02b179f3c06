using System.Reflection;
using System.Runtime.Versioning;
using Hypercore.Composition;
using Hypercore.Daemon.Hosting;
using Hypercore.Reconciliation;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// Issue 15, idle RSS: the daemon's own services and the closed Options types are registered with factories
/// (Hypercore.Composition.ServiceFactories), so the Native AOT daemon keeps no constructor reflection for them. Each
/// factory must construct what DI's constructor injection did: the constructor DI picks, with the same services in the
/// same positions, and the same lifetime.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class ServiceFactoryTests
{
    // Registered by the API's reflection service (grpcbind's area in this pass); resolved only when reflection is on.
    // The gRPC method provider is an open generic (one per mapped service, the health service's class among them is
    // internal to its package), which Microsoft.Extensions.DependencyInjection cannot build from a factory; its
    // constructor takes nothing.
    private static readonly HashSet<string> StillByType = [
        "Hypercore.Api.Reflection.ReflectedServices",
        "Hypercore.Api.GrpcMethods.TableServiceMethodProvider`1",
    ];

    // Factories from before issue 15 that build from settings, not by constructor injection: nothing to compare with.
    private static readonly HashSet<string> FactoryByDesign = [
        "Hypercore.Api.Security.AccessPolicy", // built from the security settings
        "Hypercore.Api.Security.AuthorizingMicroVmStore", // a decorator over the store registered before it
    ];

    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-factories-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    private Dictionary<string, string?> Settings(bool managedNetwork) => new()
    {
        ["Daemon:StateDirectory"] = _dir.FullName,
        ["Daemon:GrpcEndpoint"] = "127.0.0.1:0",
        ["Daemon:HttpEndpoint"] = "127.0.0.1:0",
        ["Network:Managed"] = managedNetwork ? "true" : "false",
    };

    [TestCase(false)]
    [TestCase(true)]
    public void Compose_OwnServices_AreRegisteredByFactoryOrInstance(bool managedNetwork)
    {
        var (builder, _) = DaemonHost.Compose(Settings(managedNetwork), new BoundEndpoints());

        var byType = builder.Services
            .Where(d => !d.IsKeyedService && d.ImplementationType is { } t && IsOurs(t) && !StillByType.Contains(t.FullName!))
            .Select(d => $"{d.ServiceType} -> {d.ImplementationType} ({d.Lifetime})")
            .ToList();
        byType.Should().BeEmpty("a registration by implementation type makes the AOT daemon keep DI's constructor reflection");

        var closedOptions = builder.Services.Where(d => d.ServiceType.IsConstructedGenericType && OptionsTypes.Contains(d.ServiceType.GetGenericTypeDefinition())).ToList();
        closedOptions.Should().NotBeEmpty();
        closedOptions.Where(d => d.ImplementationType is not null).Select(d => d.ServiceType.ToString()).Should().BeEmpty();
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Factories_CallTheConstructorDiWouldPick_WithTheSameServices(bool managedNetwork)
    {
        var (builder, _) = DaemonHost.Compose(Settings(managedNetwork), new BoundEndpoints());
        var descriptors = builder.Services.ToList();
        await using var app = builder.Build();
        var provider = app.Services;
        var isService = provider.GetRequiredService<IServiceProviderIsService>();

        var checkedTypes = new List<Type>();
        var mismatches = new List<string>();
        foreach (var d in descriptors.Where(d => !d.IsKeyedService && d.ImplementationFactory is not null))
        {
            var recorder = new RecordingProvider(provider);
            if (!IsOurs(d.ImplementationFactory!.Method.DeclaringType!))
            {
                continue; // the framework's own factories
            }

            var made = d.ImplementationFactory!(recorder);
            var type = made.GetType();
            var closedOptions = d.ServiceType.IsConstructedGenericType && OptionsTypes.Contains(d.ServiceType.GetGenericTypeDefinition());
            if ((!IsOurs(type) && !closedOptions) || FactoryByDesign.Contains(type.FullName!))
            {
                continue; // a framework type made by a factory of ours from the start (gRPC reflection's service)
            }

            if (recorder.Requests.Count == 1 && ReferenceEquals(made, provider.GetService(recorder.Requests[0])))
            {
                continue; // forwards to another registration (IHostedService -> ReconcilerHost and the like)
            }

            try
            {
                if (ChosenConstructor(type, isService) is not { } ctor)
                {
                    continue; // DI could never have made it (values that are not services): a factory from the start
                }

                // Only registered services count: for one that is not, DI passes the parameter's default (null) and the
                // factory's GetService returns null.
                var expected = Expected(ctor).Where(isService.IsService).ToList();

                // Arguments are resolved before the constructor runs; one that is handed the provider may ask it for more.
                var requests = recorder.Requests.Select(AsInjected).Where(isService.IsService).ToList();
                if (ctor.GetParameters().Any(p => p.ParameterType == typeof(IServiceProvider)))
                {
                    requests = requests.Take(expected.Count).ToList();
                }

                if (!requests.SequenceEqual(expected))
                {
                    mismatches.Add($"{d.ServiceType} -> {type}: factory asks for [{string.Join(", ", requests)}], DI injected [{string.Join(", ", expected)}]");
                }

                checkedTypes.Add(type);
            }
            finally
            {
                await DisposeExtra(made, provider, d);
            }
        }

        mismatches.Should().BeEmpty();

        // every kind of registration that was by type is among those checked: drivers, store, reconciler, hosted services, validators, options
        checkedTypes.Select(t => t.Name).Should().Contain([
            "QemuDriver", "FirecrackerDriver", "CloudHypervisorDriver", "UnikernelDriver", "SqliteMicroVmStore", "Reconciler",
            "ReconcilerHost", "MicroVmInformer", "GuestHealthMonitor", "MicroVmOperations", "SnapshotStartup", "QemuOptionsValidator",
            "OptionsFactory`1", "OptionsMonitor`1", "OptionsManager`1", "OptionsCache`1"]);
        if (managedNetwork)
        {
            checkedTypes.Select(t => t.Name).Should().Contain("NetworkSupervisor");
        }
    }

    [Test]
    public async Task Compose_OwnServices_KeepTheirLifetimes_AndResolveToTheirTypes()
    {
        var (builder, _) = DaemonHost.Compose(Settings(true), new BoundEndpoints());
        var descriptors = builder.Services.ToList();
        await using var app = builder.Build();

        foreach (var d in descriptors.Where(d => !d.IsKeyedService && d.ImplementationFactory is not null))
        {
            if (!IsOurs(d.ImplementationFactory!.Method.DeclaringType!))
            {
                continue; // the framework's own factories
            }

            var closedOptions = d.ServiceType.IsConstructedGenericType && OptionsTypes.Contains(d.ServiceType.GetGenericTypeDefinition());

            // The library's lifetimes for the Options types; every service of ours was and stays a singleton.
            var expected = closedOptions && d.ServiceType.GetGenericTypeDefinition() == typeof(IOptionsFactory<>)
                ? ServiceLifetime.Transient
                : ServiceLifetime.Singleton;
            d.Lifetime.Should().Be(expected, "{0}", d.ServiceType);
        }

        var services = app.Services;
        services.GetRequiredService<Drivers.DriverRegistry>().Should().BeSameAs(services.GetRequiredService<Drivers.DriverRegistry>());
        services.GetServices<Drivers.IHypervisorDriver>().Select(x => x.GetType().Name).Should().Equal("QemuDriver", "FirecrackerDriver", "CloudHypervisorDriver", "UnikernelDriver");
        services.GetServices<IStartStep>().Select(x => x.GetType().Name).Should().OnlyHaveUniqueItems();
        services.GetRequiredService<Reconciler>().Should().BeSameAs(services.GetRequiredService<Reconciler>());
        services.GetRequiredService<IOptionsFactory<ReconcilerOptions>>().Should().NotBeSameAs(services.GetRequiredService<IOptionsFactory<ReconcilerOptions>>());
    }

    [Test]
    public void LoggerFor_LogsUnderTheClassCategory_ThroughTheFactorysProviders()
    {
        var provider = new CapturingLoggerProvider();
        using var services = new ServiceCollection().AddLogging(b => b.AddProvider(provider).AddFilter("Hypercore.Reconciliation", LogLevel.Warning)).BuildServiceProvider();

        var log = services.LoggerFor<Reconciler>();
        log.LogInformation("filtered");
        log.LogWarning("kept");

        log.Should().BeOfType<Logger<Reconciler>>();
        provider.Lines.Should().Equal("Hypercore.Reconciliation.Reconciler: kept");
    }

    [Test]
    public void LoggerFor_TakesTheHostsLoggerRegistration()
    {
        using var services = new ServiceCollection().AddSingleton(typeof(ILogger<>), typeof(NullLogger<>)).BuildServiceProvider();

        services.LoggerFor<Reconciler>().Should().BeOfType<NullLogger<Reconciler>>();
        new ServiceCollection().BuildServiceProvider().OptionalLoggerFor<Reconciler>().Should().BeNull();
    }

    private static readonly HashSet<Type> OptionsTypes = [typeof(IOptions<>), typeof(IOptionsMonitor<>), typeof(IOptionsFactory<>), typeof(IOptionsMonitorCache<>)];

    private static bool IsOurs(Type t) => t.Assembly.GetName().Name is { } n && (n.StartsWith("Hypercore.", StringComparison.Ordinal) || n == "vistarad");

    /// <summary>DI's rule: the public constructor with the most parameters that it can all satisfy.</summary>
    private static ConstructorInfo? ChosenConstructor(Type type, IServiceProviderIsService isService) =>
        type.GetConstructors()
            .OrderByDescending(c => c.GetParameters().Length)
            .FirstOrDefault(c => c.GetParameters().All(p => p.HasDefaultValue || p.ParameterType == typeof(IServiceProvider) || isService.IsService(p.ParameterType)));

    /// <summary>What a factory asks the provider for, in argument order, to call <paramref name="ctor"/> as DI did.</summary>
    private static List<Type> Expected(ConstructorInfo ctor) => ctor.GetParameters()
        .Where(p => p.ParameterType != typeof(IServiceProvider)) // the factory passes its provider on
        .Select(p => AsInjected(p.ParameterType))
        .ToList();

    private static Type AsInjected(Type t) => t;

    private static async Task DisposeExtra(object made, IServiceProvider provider, ServiceDescriptor d)
    {
        if (ReferenceEquals(made, provider.GetService(d.ServiceType)))
        {
            return;
        }

        switch (made)
        {
            case IAsyncDisposable a:
                await a.DisposeAsync();
                break;
            case IDisposable x:
                x.Dispose();
                break;
        }
    }

    private sealed class RecordingProvider(IServiceProvider inner) : IServiceProvider, ISupportRequiredService
    {
        public List<Type> Requests { get; } = [];

        public object? GetService(Type serviceType)
        {
            Requests.Add(serviceType);
            return inner.GetService(serviceType);
        }

        public object GetRequiredService(Type serviceType)
        {
            Requests.Add(serviceType);
            return inner.GetRequiredService(serviceType);
        }
    }

    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public List<string> Lines { get; } = [];

        public ILogger CreateLogger(string categoryName) => new Capturing(categoryName, Lines);

        public void Dispose()
        {
        }

        private sealed class Capturing(string category, List<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                lines.Add($"{category}: {formatter(state, exception)}");
        }
    }
}

using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Hypercore.Drivers;

/// <summary>
/// Drivers by provider name. Each driver project registers itself with one TryAddEnumerable call. Every driver is
/// wrapped in an <see cref="InstrumentedDriver"/>, so each call is a trace span and each failure is counted.
/// </summary>
public sealed class DriverRegistry
{
    private readonly Dictionary<string, IHypervisorDriver> _drivers;

    public DriverRegistry(IEnumerable<IHypervisorDriver> drivers, string defaultProvider)
    {
        _drivers = drivers.Select(d => d as InstrumentedDriver ?? new InstrumentedDriver(d))
            .ToDictionary(d => d.Name, d => (IHypervisorDriver)d, StringComparer.OrdinalIgnoreCase);
        DefaultProvider = defaultProvider;
    }

    public string DefaultProvider { get; }

    public IReadOnlyCollection<IHypervisorDriver> All => _drivers.Values;

    public IReadOnlyCollection<string> Names => _drivers.Keys;

    /// <summary>Resolves a spec's provider ("" means the default).</summary>
    public bool TryGet(string provider, out IHypervisorDriver driver) =>
        _drivers.TryGetValue(provider.Length == 0 ? DefaultProvider : provider, out driver!);

    public string Resolve(string provider) => provider.Length == 0 ? DefaultProvider : provider;
}

/// <summary>
/// A driver registered with the host, by provider name. Lets the host list its providers (for settings validation
/// and help) without building the drivers, whose constructors read and validate their own options.
/// </summary>
public sealed record DriverRegistration(string ProviderName, Type DriverType);

public static class DriverServiceCollectionExtensions
{
    /// <summary>Adds a driver to the registry; the plug-in point of rule 2.</summary>
    public static IServiceCollection AddHypervisorDriver<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TDriver>(this IServiceCollection services)
        where TDriver : class, IHypervisorDriver
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHypervisorDriver, TDriver>());
        return services;
    }

    /// <summary>Adds a driver and records its provider name (see <see cref="DriverRegistration"/>).</summary>
    public static IServiceCollection AddHypervisorDriver<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TDriver>(this IServiceCollection services, string providerName)
        where TDriver : class, IHypervisorDriver
    {
        if (!services.Any(d => d.ServiceType == typeof(DriverRegistration) && d.ImplementationInstance is DriverRegistration r && r.DriverType == typeof(TDriver)))
        {
            services.AddSingleton(new DriverRegistration(providerName, typeof(TDriver)));
        }

        return services.AddHypervisorDriver<TDriver>();
    }

    /// <summary>
    /// Adds a driver made by <paramref name="create"/> (the constructor call DI would make: Hypercore.Composition.ServiceFactories
    /// says why) and records its provider name. Calling it twice adds nothing twice.
    /// </summary>
    public static IServiceCollection AddHypervisorDriver<TDriver>(this IServiceCollection services, string providerName, Func<IServiceProvider, TDriver> create)
        where TDriver : class, IHypervisorDriver
    {
        if (!services.Any(d => d.ServiceType == typeof(DriverRegistration) && d.ImplementationInstance is DriverRegistration r && r.DriverType == typeof(TDriver)))
        {
            services.AddSingleton(new DriverRegistration(providerName, typeof(TDriver)));
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHypervisorDriver, TDriver>(create));
        return services;
    }

    /// <summary>The provider names registered so far, in registration order.</summary>
    public static IReadOnlyList<string> RegisteredProviders(this IServiceCollection services) =>
        services.Select(d => d.ImplementationInstance).OfType<DriverRegistration>().Select(r => r.ProviderName).ToList();
}

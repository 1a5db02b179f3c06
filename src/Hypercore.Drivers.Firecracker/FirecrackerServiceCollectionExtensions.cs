using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Firecracker;

public static class FirecrackerServiceCollectionExtensions
{
    /// <summary>
    /// Registers the "firecracker" driver. Options bind from the "Firecracker" configuration section when an IConfiguration is
    /// registered, then <paramref name="configure"/> runs; they are validated at start.
    /// </summary>
    public static IServiceCollection AddFirecrackerDriver(this IServiceCollection services, Action<FirecrackerOptions>? configure = null)
    {
        var options = services.AddOptions<FirecrackerOptions>();
        // Once, however often this is called, so a later call cannot rebind over an earlier configure.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<FirecrackerOptions>, FirecrackerConfigurationBinder>());
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<FirecrackerOptions>, FirecrackerOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        return services.AddHypervisorDriver<FirecrackerDriver>(FirecrackerDriver.ProviderName);
    }
}

/// <summary>Binds the "Firecracker" section when the host has configuration (tests and tools compose the driver without one).</summary>
internal sealed class FirecrackerConfigurationBinder(IServiceProvider services) : IConfigureOptions<FirecrackerOptions>
{
    public void Configure(FirecrackerOptions options) =>
        services.GetService<IConfiguration>()?.GetSection(FirecrackerOptions.Section).Bind(options);
}

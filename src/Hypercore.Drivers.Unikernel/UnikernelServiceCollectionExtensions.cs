using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Unikernel;

public static class UnikernelServiceCollectionExtensions
{
    /// <summary>
    /// Registers the "unikernel" driver. Options bind from the "Unikernel" configuration section when an IConfiguration is
    /// registered, then <paramref name="configure"/> runs; they are validated at start.
    /// </summary>
    public static IServiceCollection AddUnikernelDriver(this IServiceCollection services, Action<UnikernelOptions>? configure = null)
    {
        var options = services.AddOptions<UnikernelOptions>();
        // Once, however often this is called, so a later call cannot rebind over an earlier configure.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<UnikernelOptions>, UnikernelConfigurationBinder>());
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<UnikernelOptions>, UnikernelOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        return services.AddHypervisorDriver<UnikernelDriver>(UnikernelDriver.ProviderName);
    }
}

/// <summary>Binds the "Unikernel" section when the host has configuration (tests and tools compose the driver without one).</summary>
internal sealed class UnikernelConfigurationBinder(IServiceProvider services) : IConfigureOptions<UnikernelOptions>
{
    public void Configure(UnikernelOptions options) =>
        services.GetService<IConfiguration>()?.GetSection(UnikernelOptions.Section).Bind(options);
}

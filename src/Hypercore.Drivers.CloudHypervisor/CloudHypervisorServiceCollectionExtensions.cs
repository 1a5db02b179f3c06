using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.CloudHypervisor;

public static class CloudHypervisorServiceCollectionExtensions
{
    /// <summary>
    /// Registers the "cloud-hypervisor" driver. Options bind from the "CloudHypervisor" configuration section when an IConfiguration is
    /// registered, then <paramref name="configure"/> runs; they are validated at start.
    /// </summary>
    public static IServiceCollection AddCloudHypervisorDriver(this IServiceCollection services, Action<CloudHypervisorOptions>? configure = null)
    {
        var options = services.AddOptions<CloudHypervisorOptions>();
        // Once, however often this is called, so a later call cannot rebind over an earlier configure.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<CloudHypervisorOptions>, CloudHypervisorConfigurationBinder>());
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CloudHypervisorOptions>, CloudHypervisorOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        return services.AddHypervisorDriver<CloudHypervisorDriver>(CloudHypervisorDriver.ProviderName);
    }
}

/// <summary>Binds the "CloudHypervisor" section when the host has configuration (tests and tools compose the driver without one).</summary>
internal sealed class CloudHypervisorConfigurationBinder(IServiceProvider services) : IConfigureOptions<CloudHypervisorOptions>
{
    public void Configure(CloudHypervisorOptions options) =>
        services.GetService<IConfiguration>()?.GetSection(CloudHypervisorOptions.Section).Bind(options);
}

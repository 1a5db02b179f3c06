using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.CloudHypervisor;

public static class CloudHypervisorServiceCollectionExtensions
{
    /// <summary>
    /// Registers the "cloud-hypervisor" driver. Bind configuration in <paramref name="configure"/>, e.g.
    /// <c>o => configuration.GetSection(CloudHypervisorOptions.Section).Bind(o)</c>; options are validated at start.
    /// </summary>
    public static IServiceCollection AddCloudHypervisorDriver(this IServiceCollection services, Action<CloudHypervisorOptions>? configure = null)
    {
        var options = services.AddOptions<CloudHypervisorOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CloudHypervisorOptions>, CloudHypervisorOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        return services.AddHypervisorDriver<CloudHypervisorDriver>();
    }
}

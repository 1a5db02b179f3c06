using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Firecracker;

public static class FirecrackerServiceCollectionExtensions
{
    /// <summary>
    /// Registers the "firecracker" driver. Bind configuration in <paramref name="configure"/>, e.g.
    /// <c>o => configuration.GetSection(FirecrackerOptions.Section).Bind(o)</c>; options are validated at start.
    /// </summary>
    public static IServiceCollection AddFirecrackerDriver(this IServiceCollection services, Action<FirecrackerOptions>? configure = null)
    {
        var options = services.AddOptions<FirecrackerOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<FirecrackerOptions>, FirecrackerOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        return services.AddHypervisorDriver<FirecrackerDriver>();
    }
}

using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Unikernel;

public static class UnikernelServiceCollectionExtensions
{
    /// <summary>
    /// Registers the "unikernel" driver. Bind configuration in <paramref name="configure"/>, e.g.
    /// <c>o => configuration.GetSection(UnikernelOptions.Section).Bind(o)</c>; options are validated at start.
    /// </summary>
    public static IServiceCollection AddUnikernelDriver(this IServiceCollection services, Action<UnikernelOptions>? configure = null)
    {
        var options = services.AddOptions<UnikernelOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<UnikernelOptions>, UnikernelOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        return services.AddHypervisorDriver<UnikernelDriver>();
    }
}

using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Qemu;

public static class QemuServiceCollectionExtensions
{
    /// <summary>
    /// Registers the "qemu" driver. Options bind from the "Qemu" configuration section when an IConfiguration is
    /// registered, then <paramref name="configure"/> runs; they are validated at start.
    /// </summary>
    public static IServiceCollection AddQemuDriver(this IServiceCollection services, Action<QemuOptions>? configure = null)
    {
        var options = services.AddOptions<QemuOptions>();
        // Once, however often this is called, so a later call cannot rebind over an earlier configure.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<QemuOptions>, QemuConfigurationBinder>());
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<QemuOptions>, QemuOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddHypervisorDriver<QemuDriver>("qemu");
        return services;
    }
}

/// <summary>Binds the "Qemu" section when the host has configuration (tests and tools compose the driver without one).</summary>
internal sealed class QemuConfigurationBinder(IServiceProvider services) : IConfigureOptions<QemuOptions>
{
    public void Configure(QemuOptions options) =>
        services.GetService<IConfiguration>()?.GetSection(QemuOptions.SectionName).Bind(options);
}

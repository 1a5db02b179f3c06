using Hypercore.Images.Cache;
using Hypercore.Composition;
using Hypercore.Images.Registry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Images;

public static class ImagesServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="RegistryClient"/> and <see cref="ImageCache"/> as singletons. Options bind from
    /// "Images:Registry" and "Images:Cache" when an IConfiguration is registered, then the callbacks run; both
    /// are validated at start.
    /// </summary>
    public static IServiceCollection AddImages(this IServiceCollection services,
        Action<RegistryOptions>? configureRegistry = null, Action<ImageCacheOptions>? configureCache = null)
    {
        var registry = services.AddOptions<RegistryOptions>();
        var cache = services.AddOptions<ImageCacheOptions>();
        // Factories, not implementation types: Hypercore.Composition.ServiceFactories says why.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<RegistryOptions>, ImagesConfigurationBinder>(sp => new ImagesConfigurationBinder(sp)));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<ImageCacheOptions>, ImagesConfigurationBinder>(sp => new ImagesConfigurationBinder(sp)));
        if (configureRegistry is not null) registry.Configure(configureRegistry);
        if (configureCache is not null) cache.Configure(configureCache);
        registry.ValidateOnStart();
        cache.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RegistryOptions>, RegistryOptionsValidator>(_ => new RegistryOptionsValidator()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ImageCacheOptions>, ImageCacheOptionsValidator>(_ => new ImageCacheOptionsValidator()));
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new RegistryClient(sp.GetRequiredService<IOptions<RegistryOptions>>().Value));
        services.TryAddSingleton(sp => new ImageCache(
            sp.GetRequiredService<IOptions<ImageCacheOptions>>().Value,
            sp.GetRequiredService<RegistryClient>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.OptionalLoggerFor<ImageCache>()));
        return services;
    }
}

/// <summary>Binds the sections when the host has configuration (tests and tools compose without one).</summary>
internal sealed class ImagesConfigurationBinder(IServiceProvider services) : IConfigureOptions<RegistryOptions>, IConfigureOptions<ImageCacheOptions>
{
    public void Configure(RegistryOptions options) =>
        services.GetService<IConfiguration>()?.GetSection(RegistryOptions.SectionName).Bind(options);

    public void Configure(ImageCacheOptions options) =>
        services.GetService<IConfiguration>()?.GetSection(ImageCacheOptions.SectionName).Bind(options);
}

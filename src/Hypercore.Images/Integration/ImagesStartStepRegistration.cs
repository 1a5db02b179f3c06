using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Hypercore.Composition;

namespace Hypercore.Images.Integration;

public static class ImagesStartStepRegistration
{
    /// <summary>Registers the images start step (order 200) with the reconciler; call after <see cref="ImagesServiceCollectionExtensions.AddImages"/>.</summary>
    public static IServiceCollection AddImagesStartStep(this IServiceCollection services, Action<ImagesStartStepOptions>? configure = null)
    {
        var options = new ImagesStartStepOptions();
        configure?.Invoke(options);
        services.TryAddSingleton(sp => new ImagesStartStep(
            sp.GetRequiredService<Cache.ImageCache>(),
            sp.GetRequiredService<TimeProvider>(),
            options,
            sp.OptionalLoggerFor<ImagesStartStep>(), // not DI's Logger<> closed at run time: Hypercore.Composition.ServiceFactories
            sp.GetService<RegistryAllowList>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IStartStep, ImagesStartStep>(sp => sp.GetRequiredService<ImagesStartStep>()));
        return services;
    }
}

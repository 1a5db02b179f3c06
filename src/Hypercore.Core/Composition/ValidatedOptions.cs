using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Hypercore.Composition;

/// <summary>The options registration the Add* methods share (STYLE 4: options validated at start).</summary>
public static class ValidatedOptions
{
    /// <summary>
    /// Adds <typeparamref name="TOptions"/>, applies <paramref name="configure"/> when given (each call's), and validates
    /// them at start with one <typeparamref name="TValidator"/> however often this is called (registered by a factory:
    /// <see cref="ServiceFactories"/> says why).
    /// </summary>
    public static OptionsBuilder<TOptions> AddValidatedOptions<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)] TOptions, TValidator>(this IServiceCollection services, Action<TOptions>? configure)
        where TOptions : class
        where TValidator : class, IValidateOptions<TOptions>, new()
    {
        var options = services.AddOptions<TOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TOptions>, TValidator>(_ => new TValidator()));
        return options;
    }
}

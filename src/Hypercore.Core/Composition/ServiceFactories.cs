using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Hypercore.Composition;

/// <summary>
/// What the explicit service factories (<c>services.AddSingleton(sp =&gt; new Foo(...))</c>) of the Add* methods use
/// in place of constructor injection.
/// </summary>
/// <remarks>
/// Issue 15, idle RSS of the Native AOT daemon: for a registration by implementation type, DI reflects over the
/// constructors and invokes the chosen one by reflection, and under Native AOT the constructor, parameter, invoker and
/// type-loader caches that builds stay in the heap for the life of the process (bench/NOTES.md, rss3 and rss4). A
/// factory is compiled code: each one calls the constructor DI would have picked (the longest one it can satisfy;
/// an optional parameter gets the service when one is registered, else its default) with the same services.
/// </remarks>
public static class ServiceFactories
{
    /// <summary>
    /// The <see cref="ILogger{TCategoryName}"/> DI injects, from DI: whatever the host registered for
    /// <c>ILogger&lt;&gt;</c> (the logging library's <see cref="Logger{T}"/>, or a test's null logger) stays in charge.
    /// </summary>
    public static ILogger<T> LoggerFor<T>(this IServiceProvider services) => services.GetRequiredService<ILogger<T>>();

    /// <summary>As <see cref="LoggerFor{T}"/> for an optional logger: null when the host has no logging.</summary>
    public static ILogger<T>? OptionalLoggerFor<T>(this IServiceProvider services) => services.GetService<ILogger<T>>();
}

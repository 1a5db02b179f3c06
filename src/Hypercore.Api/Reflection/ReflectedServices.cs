using Grpc.Reflection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using ServiceDescriptor = Google.Protobuf.Reflection.ServiceDescriptor;

namespace Hypercore.Api.Reflection;

/// <summary>
/// The services gRPC reflection describes (v1 and v1alpha, so grpcurl works with no protos), named as
/// <see cref="HypercoreApiExtensions.MapHypercoreApi"/> maps them. Grpc.AspNetCore.Server.Reflection found the same
/// list by reflecting over each mapped service type for its generated class's static <c>Descriptor</c> property, which
/// the Native AOT compiler cannot prove safe (IL2075) and which kept vistarad from publishing without warnings; here
/// the descriptors are known statically, and the reflection services are Grpc.Reflection's own.
/// </summary>
internal sealed class ReflectedServices
{
    private readonly List<Func<ServiceDescriptor>> _sources = [];

    /// <summary>
    /// The descriptors, read when a reflection service is first created (on the first reflection call): reading one
    /// builds its .proto file's reflection descriptors and those of the files it imports, which the daemon's start
    /// has no use for (bench/NOTES.md, grpcbind).
    /// </summary>
    public IReadOnlyList<ServiceDescriptor> Descriptors
    {
        get
        {
            var descriptors = new List<ServiceDescriptor>();
            foreach (var source in _sources)
            {
                var descriptor = source();
                if (!descriptors.Any(d => d.FullName == descriptor.FullName))
                {
                    descriptors.Add(descriptor);
                }
            }

            return descriptors;
        }
    }

    public void Add(Func<ServiceDescriptor> descriptor) => _sources.Add(descriptor);

    /// <summary>
    /// Registers both reflection services, built on first use (after every service has been mapped) from this list.
    /// </summary>
    public static void Register(IServiceCollection services)
    {
        services.TryAddSingleton<ReflectedServices>();
        services.TryAddSingleton(sp => new ReflectionServiceImpl(sp.GetRequiredService<ReflectedServices>().Descriptors));
        services.TryAddSingleton(sp => new ReflectionV1ServiceImpl(sp.GetRequiredService<ReflectedServices>().Descriptors));
    }
}

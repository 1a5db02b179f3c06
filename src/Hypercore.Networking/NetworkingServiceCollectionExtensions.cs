using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Hypercore.Composition;

namespace Hypercore.Networking;

public static class NetworkingServiceCollectionExtensions
{
    /// <summary>
    /// Registers the network start step (always: it refuses macvtap on parents and taps on bridges the node did not
    /// allow, and reports interfaces in status) and, with <see cref="NodeNetworkOptions.Managed"/>, the supervisor of the managed bridge.
    /// </summary>
    public static IServiceCollection AddNodeNetworking(this IServiceCollection services, Action<NodeNetworkOptions> configure, bool managed)
    {
        services.AddOptions<NodeNetworkOptions>().Configure(configure).ValidateOnStart();
        // Factories, not implementation types: Hypercore.Composition.ServiceFactories says why.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<NodeNetworkOptions>, NodeNetworkOptionsValidator>(_ => new NodeNetworkOptionsValidator()));
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new NodeNetwork(
            sp.GetRequiredService<IOptions<NodeNetworkOptions>>(), sp.GetRequiredService<TimeProvider>(), sp.LoggerFor<NodeNetwork>(),
            sp.GetService<HostAccess.HostNetworkPolicy>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IStartStep, NetworkStartStep>(
            sp => new NetworkStartStep(sp.GetRequiredService<NodeNetwork>(), sp.LoggerFor<NetworkStartStep>())));
        services.TryAddSingleton<GuestHealth.IGuestAddressSource>(sp => new ManagedGuestAddresses(sp.GetRequiredService<NodeNetwork>())); // probes may go to leased addresses
        if (managed)
        {
            services.AddSingleton<IHostedService>(sp => new NetworkSupervisor(
                sp.GetRequiredService<NodeNetwork>(), sp.GetRequiredService<TimeProvider>(), sp.LoggerFor<NetworkSupervisor>()));
        }

        return services;
    }
}

using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Hypercore.Networking;

public static class NetworkingServiceCollectionExtensions
{
    /// <summary>
    /// Registers the network start step (always: it refuses macvtap on parents the node did not allow and reports
    /// interfaces in status) and, with <see cref="NodeNetworkOptions.Managed"/>, the supervisor of the managed bridge.
    /// </summary>
    public static IServiceCollection AddNodeNetworking(this IServiceCollection services, Action<NodeNetworkOptions> configure, bool managed)
    {
        services.AddOptions<NodeNetworkOptions>().Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<NodeNetworkOptions>, NodeNetworkOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<NodeNetwork>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IStartStep, NetworkStartStep>());
        services.TryAddSingleton<GuestHealth.IGuestAddressSource, ManagedGuestAddresses>(); // probes may go to leased addresses
        if (managed)
        {
            services.AddSingleton<IHostedService, NetworkSupervisor>();
        }

        return services;
    }
}

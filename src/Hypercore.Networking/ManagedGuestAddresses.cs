using System.Net;
using Hypercore.GuestHealth;
using Hypercore.MicroVms;

namespace Hypercore.Networking;

/// <summary>
/// The addresses the managed network leased a VM, for the guest prober: the one kind of guest address no caller
/// chose, so a probe may go there without probe-allowed-cidrs. Nothing while the managed network is off.
/// </summary>
public sealed class ManagedGuestAddresses(NodeNetwork network) : IGuestAddressSource
{
    public IReadOnlyCollection<IPAddress> Assigned(MicroVm vm)
    {
        if (!network.Options.Managed)
        {
            return [];
        }

        return network.Leases.List()
            .Where(l => l.Uid == vm.Uid)
            .Select(l => IPAddress.TryParse(l.Address, out var a) ? a : null)
            .OfType<IPAddress>()
            .ToList();
    }

    // The network step leases every TAP interface that has no bridge of its own (NetworkStartStep).
    public bool WillAssign(NetworkInterfaceSpec nic) =>
        network.Options.Managed && nic.Type == InterfaceType.Tap && string.IsNullOrEmpty(nic.Bridge);
}

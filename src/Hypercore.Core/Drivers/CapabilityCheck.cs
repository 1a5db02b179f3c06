using Hypercore.MicroVms;

namespace Hypercore.Drivers;

/// <summary>
/// What a spec asks of its provider that the provider cannot do. The one check both the application layer (a
/// lifecycle request that would ask for more is refused) and the reconciler (a stored spec that asks for it gets an
/// Unsupported condition before any driver call) use, so the two can never disagree.
/// </summary>
public static class CapabilityCheck
{
    /// <summary>Every unsupported request of <paramref name="spec"/>, worded for a person; empty when the provider can do it all.</summary>
    public static IReadOnlyList<string> Unsupported(MicroVmSpec spec, IHypervisorDriver driver)
    {
        var caps = driver.Capabilities;
        List<string>? refusals = null; // made at the first refusal (issue 15, alloc9: every pass checks, nearly always nothing)
        if (spec.State == DesiredState.Paused && !caps.HasFlag(DriverCapabilities.Pause))
        {
            (refusals ??= []).Add($"provider \"{driver.Name}\" cannot pause a VM");
        }

        if (spec.Interfaces.Any(i => i.Type == InterfaceType.Tap) && !caps.HasFlag(DriverCapabilities.Tap))
        {
            (refusals ??= []).Add($"provider \"{driver.Name}\" does not support tap interfaces");
        }

        if (spec.Interfaces.Any(i => i.Type == InterfaceType.Macvtap) && !caps.HasFlag(DriverCapabilities.Macvtap))
        {
            // Firecracker and Cloud Hypervisor are configured over their HTTP API with a tap *name* they open through
            // /dev/net/tun; a macvtap is a different character device (/dev/tapN) that only an inherited fd reaches.
            (refusals ??= []).Add($"provider \"{driver.Name}\" does not support macvtap interfaces (it attaches interfaces by tap name, and a macvtap is only reachable as an open /dev/tapN fd); use a TAP interface or the qemu provider");
        }

        if (spec.Metadata.Count > 0 && !caps.HasFlag(DriverCapabilities.MetadataService))
        {
            (refusals ??= []).Add($"provider \"{driver.Name}\" has no metadata service for spec.metadata");
        }

        if (spec.Initrd is not null && !caps.HasFlag(DriverCapabilities.Initrd))
        {
            (refusals ??= []).Add($"provider \"{driver.Name}\" cannot boot an initrd");
        }

        if ((spec.RootVolume is not null || spec.AdditionalVolumes.Count > 0) && !caps.HasFlag(DriverCapabilities.BlockDevices))
        {
            (refusals ??= []).Add($"provider \"{driver.Name}\" cannot attach block devices");
        }

        return refusals ?? (IReadOnlyList<string>)[];
    }

    /// <summary>
    /// What changing <paramref name="before"/> into <paramref name="after"/> newly asks that the provider cannot do.
    /// A request the stored spec already made is not repeated: its condition already says so, and refusing e.g. a
    /// Stop because of it would leave the caller no way out.
    /// </summary>
    public static IReadOnlyList<string> NewlyUnsupported(MicroVmSpec before, MicroVmSpec after, IHypervisorDriver driver) =>
        Unsupported(after, driver).Except(Unsupported(before, driver), StringComparer.Ordinal).ToList();
}

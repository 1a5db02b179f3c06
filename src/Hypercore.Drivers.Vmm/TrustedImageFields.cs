using Hypercore.HostAccess;
using Hypercore.Images;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;

namespace Hypercore.Drivers.Vmm;

/// <summary>
/// Images (issue 11): which fields of the view a driver is given hold files the images start step resolved. A field
/// is trusted only when the STORED spec held an OCI reference there (a caller cannot name a cache path and be
/// trusted: their path is checked against the configured roots like any other) and the view's path was vouched for
/// in <see cref="StartContext.TrustedPaths"/>.
/// </summary>
internal sealed record TrustedImageFields(bool Kernel, bool Initrd, IReadOnlySet<string> Volumes, IReadOnlySet<string> CopyOnWrite)
{
    public static TrustedImageFields Of(StartContext context)
    {
        var stored = context.Stored.Spec;
        var view = context.Vm.Spec;
        var trusted = context.TrustedPaths;
        var kernel = ImageSources.IsReference(stored.Kernel.Image) && trusted.Contains(view.Kernel.Image);
        // An initrd is the image step's when the stored one was a reference, or when there was none and the kernel
        // image carried one (boot/initrd.img).
        var initrd = (stored.Initrd is { } si ? ImageSources.IsReference(si.Image) : kernel) &&
            view.Initrd is { } vi && trusted.Contains(vi.Image);
        var fromImages = HostPathPolicy.Volumes(stored).Where(v => v.Volume.ContainerSource is not null).Select(v => v.Volume.Id).ToHashSet(StringComparer.Ordinal);
        var volumes = HostPathPolicy.Volumes(view)
            .Where(v => fromImages.Contains(v.Volume.Id) && v.Volume.ContainerSource is null && trusted.Contains(v.Volume.HostPath))
            .Select(v => v.Volume.Id).ToHashSet(StringComparer.Ordinal);
        var copyOnWrite = context.Items.TryGetValue(ImageSources.CopyOnWriteVolumesItem, out var item) && item is IEnumerable<string> ids
            ? ids.Where(volumes.Contains).ToHashSet(StringComparer.Ordinal)
            : [];

        // A writable volume of a shared cached disk without its own view would let two guests write one file.
        foreach (var (volume, _) in HostPathPolicy.Volumes(view).Where(v => volumes.Contains(v.Volume.Id) && !v.Volume.IsReadOnly))
        {
            copyOnWrite.Add(volume.Id);
        }

        return new TrustedImageFields(kernel, initrd, volumes, copyOnWrite);
    }

    /// <summary>The view with the trusted volumes left out, for the host-path policy's check of everything else.</summary>
    public MicroVmSpec Untrusted(MicroVmSpec spec) => Volumes.Count == 0 && !Initrd
        ? spec
        : spec with
        {
            RootVolume = spec.RootVolume is { } root && Volumes.Contains(root.Id) ? null : spec.RootVolume,
            AdditionalVolumes = spec.AdditionalVolumes.Where(v => !Volumes.Contains(v.Id)).ToList(),
            Initrd = Initrd ? null : spec.Initrd,
        };
}

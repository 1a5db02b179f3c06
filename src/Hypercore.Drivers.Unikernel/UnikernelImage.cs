using Hypercore.MicroVms;

namespace Hypercore.Drivers.Unikernel;

/// <summary>
/// How a MicroVM spec maps onto a unikernel. A NanoVMs image (the .img that <c>ops build</c> writes) is a whole
/// bootable disk: MBR boot stage, the Nanos kernel and the application filesystem with its arguments and
/// environment in the manifest. So the image is the boot disk, there is no separate kernel, initrd or command line:
/// kernel.image names the image when it ends in ".img", otherwise root_volume.host_path does; every other volume
/// becomes an extra virtio disk.
/// </summary>
public sealed record UnikernelImage(string BootDisk, IReadOnlyList<VolumeSpec> ExtraDisks)
{
    /// <summary>Whether kernel.image names a NanoVMs image (the boot disk itself).</summary>
    public static bool IsImage(string kernelImage) => kernelImage.EndsWith(".img", StringComparison.OrdinalIgnoreCase);

    public static DriverException NoImage(MicroVmSpec spec) => new("InvalidImage",
        $"the unikernel provider boots a NanoVMs disk image: set kernel.image to a .img file or root_volume.host_path to the image (kernel.image is \"{spec.Kernel.Image}\")");

    public static UnikernelImage Resolve(MicroVmSpec spec)
    {
        if (IsImage(spec.Kernel.Image))
        {
            var extra = (spec.RootVolume is null ? [] : new[] { spec.RootVolume }).Concat(spec.AdditionalVolumes).ToList();
            return Checked(new UnikernelImage(spec.Kernel.Image, extra));
        }

        if (spec.RootVolume is not null)
        {
            return Checked(new UnikernelImage(spec.RootVolume.HostPath, spec.AdditionalVolumes));
        }

        throw NoImage(spec);
    }

    private static UnikernelImage Checked(UnikernelImage image)
    {
        if (!File.Exists(image.BootDisk))
        {
            throw new DriverException("ImageNotFound", $"unikernel image {image.BootDisk} does not exist");
        }

        foreach (var disk in image.ExtraDisks.Where(d => !File.Exists(d.HostPath)))
        {
            throw new DriverException("ImageNotFound", $"volume \"{disk.Id}\" file {disk.HostPath} does not exist");
        }

        return image;
    }
}

using Hypercore.MicroVms;
using Hypercore.Operations;
using Microsoft.Extensions.Options;

namespace Hypercore.Images;

/// <summary>A named boot image found on this node.</summary>
/// <param name="RootfsBytes">Size of rootfs.img, when the image has one.</param>
public sealed record BootImage(string Name, string KernelPath, string? InitrdPath, string? RootfsPath, long? RootfsBytes);

/// <summary>
/// Named boot images in the node's image directory: <c>&lt;dir&gt;/&lt;name&gt;/vmlinuz</c> plus optional
/// <c>initrd.img</c> and <c>rootfs.img</c>. Read from disk on every call, so images added while the daemon runs
/// are usable at once.
/// </summary>
public sealed class ImageCatalog
{
    public const string KernelFile = "vmlinuz";
    public const string InitrdFile = "initrd.img";
    public const string RootfsFile = "rootfs.img";

    /// <summary>Label recording which named image a VM was created from (shown by vistara.GetMicroVM).</summary>
    public const string ImageLabel = "hypercore.vistara.dev/image";

    private readonly IOptionsMonitor<MicroVmOperationsOptions> _options;

    public ImageCatalog(IOptionsMonitor<MicroVmOperationsOptions> options) => _options = options;

    public string Directory => _options.CurrentValue.ImageDirectory;

    /// <summary>Names of the usable images (those with a kernel), sorted.</summary>
    public IReadOnlyList<string> List()
    {
        try
        {
            return new DirectoryInfo(Directory).Exists
                ? new DirectoryInfo(Directory).EnumerateDirectories()
                    .Where(d => File.Exists(Path.Combine(d.FullName, KernelFile)))
                    .Select(d => d.Name)
                    .Order(StringComparer.Ordinal)
                    .ToList()
                : [];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>The image called <paramref name="name"/>, or null when there is none (or the name is not a plain name).</summary>
    public BootImage? Find(string name)
    {
        if (!IsPlainName(name))
        {
            return null;
        }

        var dir = Path.Combine(Directory, name);
        var kernel = Path.Combine(dir, KernelFile);
        if (!File.Exists(kernel))
        {
            return null;
        }

        var initrd = Path.Combine(dir, InitrdFile);
        var rootfs = new FileInfo(Path.Combine(dir, RootfsFile));
        return new BootImage(
            name,
            kernel,
            File.Exists(initrd) ? initrd : null,
            rootfs.Exists ? rootfs.FullName : null,
            rootfs.Exists ? rootfs.Length : null);
    }

    /// <summary>
    /// Fills a spec whose kernel.image is an image name: the kernel path, the initrd and root volume when the image
    /// has them and the spec does not, and the image label. Returns null (and adds an error) for an unknown image.
    /// Absolute kernel paths are left as they are: whether that file exists is a runtime fact shown in status.
    /// </summary>
    public MicroVmSpec? Resolve(MicroVmSpec spec, ICollection<string> errors)
    {
        var image = spec.Kernel.Image;
        if (image.Length == 0 || Path.IsPathFullyQualified(image) || ImageSources.IsReference(image))
        {
            return spec; // a reference is pulled by the images start step before the VM starts
        }

        var found = Find(image);
        if (found is null)
        {
            var known = List();
            errors.Add($"kernel.image \"{image}\" is neither an absolute path nor an image in {Directory}; images found: " +
                (known.Count == 0 ? "none" : string.Join(", ", known)));
            return null;
        }

        return Apply(spec, found);
    }

    internal static MicroVmSpec Apply(MicroVmSpec spec, BootImage image)
    {
        var labels = spec.Labels.ContainsKey(ImageLabel)
            ? spec.Labels
            : new Dictionary<string, string>(spec.Labels) { [ImageLabel] = image.Name };
        return spec with
        {
            Kernel = spec.Kernel with { Image = image.KernelPath },
            Initrd = spec.Initrd ?? (image.InitrdPath is null ? null : new InitrdSpec { Image = image.InitrdPath }),

            // The image's rootfs is shared by every VM made from it, so it is attached read-only: a writable shared
            // disk would be corrupted by the second guest. A writable per-VM disk is a root_volume with its own host_path.
            RootVolume = spec.RootVolume ?? (image.RootfsPath is null
                ? null
                : new VolumeSpec
                {
                    Id = "root",
                    HostPath = image.RootfsPath,
                    IsReadOnly = true,
                    SizeInMb = (int)((image.RootfsBytes!.Value + (1024 * 1024) - 1) / (1024 * 1024)),
                }),
            Labels = labels,
        };
    }

    private static bool IsPlainName(string name) =>
        name.Length is > 0 and <= 255 && name != "." && name != ".." &&
        name.IndexOfAny(['/', '\\', '\0']) < 0;
}

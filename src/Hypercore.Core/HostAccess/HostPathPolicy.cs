using Hypercore.Images;
using Hypercore.MicroVms;
using Microsoft.Extensions.Options;

namespace Hypercore.HostAccess;

/// <summary>
/// Decides which host files a spec may hand to a hypervisor. Pure apart from reading the file system: paths are
/// resolved with every symlink followed (no escape through a link), ".." is refused outright, and the resolved
/// path must lie under a configured root and be of an allowed kind. Called by the API before anything is written
/// and again by the drivers' prepared-spec step right before a VM starts (the file system may have changed).
/// </summary>
public sealed class HostPathPolicy
{
    private readonly IReadOnlyList<string> _imageRoots;
    private readonly IReadOnlyList<string> _kernelRoots;
    private readonly IReadOnlyList<string> _volumeRoots;
    private readonly IReadOnlyList<string> _blockDevices;
    private readonly Func<string, long> _freeBytes;
    private readonly RecentKernelPasses _recentPasses;

    public HostPathPolicy(IOptions<HostAccessOptions> options)
        : this(options.Value)
    {
    }

    /// <param name="freeBytes">Free bytes of the file system holding a directory; null reads it from the file system.</param>
    /// <param name="time">The clock of <see cref="AdmissionViolations"/>' reuse of recent passes; null: the system's.</param>
    public HostPathPolicy(HostAccessOptions options, Func<string, long>? freeBytes = null, TimeProvider? time = null)
    {
        Options = options;
        _recentPasses = new RecentKernelPasses(time ?? TimeProvider.System);
        _imageRoots = options.ImageDirectories.Select(Root).ToList();
        _kernelRoots = [.. _imageRoots, .. options.KernelRoots.Select(Root)];
        _volumeRoots = options.VolumeRoots.Select(Root).ToList();
        _blockDevices = options.AllowedBlockDevices.SelectMany(d => new[] { d, Root(d) }).Distinct(StringComparer.Ordinal).ToList();
        _freeBytes = freeBytes ?? FreeBytes;
    }

    public HostAccessOptions Options { get; }

    /// <summary>Every violation in the spec's kernel, initrd and volumes (empty when it may run), for the API's one InvalidArgument.</summary>
    /// <param name="checkKernel">False for a provider that boots no kernel for this spec (kernel.image is then unused).</param>
    public IReadOnlyList<string> Violations(MicroVmSpec spec, bool checkKernel = true) => Violations(spec, checkKernel, admission: false);

    /// <summary>
    /// <see cref="Violations(MicroVmSpec, bool)"/> for the API's early refusal at create, which may reuse a recent pass
    /// of the same kernel or initrd (<see cref="RecentKernelPasses"/>): the same image and filename found allowed less
    /// than <see cref="RecentKernelPasses.Lifetime"/> ago is not resolved again. Only passes are reused (a refusal is
    /// always made afresh), volumes are always checked, and the drivers' check before a start
    /// (<see cref="Violations(MicroVmSpec, bool)"/>, <see cref="Check"/>) never reuses anything: that check, not this
    /// one, is what stands between a spec and the hypervisor.
    /// </summary>
    public IReadOnlyList<string> AdmissionViolations(MicroVmSpec spec, bool checkKernel = true) => Violations(spec, checkKernel, admission: true);

    private IReadOnlyList<string> Violations(MicroVmSpec spec, bool checkKernel, bool admission)
    {
        // Every Create passes here (issue 15): no list, closure or iterator unless there is something to report or a volume.
        List<string>? errors = null;

        // Images (issue 11): an OCI reference names no host file; the images start step resolves it into its cache
        // and the driver accepts that path only for the field that held the reference (see TrustedImagePaths).
        if (checkKernel && !ImageSources.IsReference(spec.Kernel.Image))
        {
            CheckKernelInto(ref errors, "kernel", spec.Kernel.Image, spec.Kernel.Filename, admission);
        }

        if (checkKernel && spec.Initrd is not null && !ImageSources.IsReference(spec.Initrd.Image))
        {
            CheckKernelInto(ref errors, "initrd", spec.Initrd.Image, spec.Initrd.Filename, admission);
        }

        if (spec.RootVolume is not null || spec.AdditionalVolumes.Count > 0)
        {
            foreach (var (volume, field) in Volumes(spec))
            {
                try
                {
                    CheckVolume(volume, field);
                }
                catch (HostPathNotAllowedException ex)
                {
                    (errors ??= []).Add(ex.Message);
                }
            }
        }

        return errors ?? (IReadOnlyList<string>)[];
    }

    /// <summary><see cref="CheckKernel"/>, its message added to <paramref name="errors"/>; at admission a recent pass stands.</summary>
    private void CheckKernelInto(ref List<string>? errors, string what, string image, string? filename, bool admission)
    {
        if (admission && _recentPasses.Passed(what, image, filename))
        {
            return;
        }

        try
        {
            CheckKernel(what, image, filename);
            if (admission)
            {
                _recentPasses.Add(what, image, filename);
            }
        }
        catch (HostPathNotAllowedException ex)
        {
            (errors ??= []).Add(ex.Message);
        }
    }

    /// <summary>Throws the first violation in the spec (see <see cref="Violations(MicroVmSpec, bool)"/>).</summary>
    /// <exception cref="HostPathNotAllowedException">the spec names a host file this node does not hand out.</exception>
    public void Check(MicroVmSpec spec, bool checkKernel = true)
    {
        if (Violations(spec, checkKernel) is [var first, ..])
        {
            throw new HostPathNotAllowedException(first);
        }
    }

    /// <summary>
    /// The host path of a kernel or initrd: <paramref name="image"/>, or <paramref name="image"/>/<paramref name="filename"/>
    /// where filename stays inside the image. Must resolve under an image directory or a kernel root and, when it
    /// exists, be a regular file (a missing one is for the driver to report as not found). Returns the resolved path.
    /// </summary>
    /// <param name="what">"kernel" or "initrd": names the spec field in messages.</param>
    public string CheckKernel(string what, string image, string? filename)
    {
        RequireAbsoluteWithoutDotDot(what, ".image", image);
        var path = image;
        if (!string.IsNullOrEmpty(filename))
        {
            if (filename.StartsWith('/') || HasDotDot(filename))
            {
                throw new HostPathNotAllowedException(
                    $"{what}.filename \"{filename}\" must be a relative path inside {what}.image \"{image}\" without \"..\"");
            }

            path = Path.Combine(image, filename);
        }

        var (real, kind) = HostFiles.RealPathAndKind(path); // issue 15 (cpu10): the kind from the lookup that resolved it
        if (!string.IsNullOrEmpty(filename) && !IsUnder(real, HostFiles.RealPath(image)))
        {
            throw new HostPathNotAllowedException(
                $"{what}.filename \"{filename}\" leaves {what}.image \"{image}\" (it resolves to {real}); a filename must stay inside its image");
        }

        if (!IsUnderAny(real, _kernelRoots))
        {
            throw new HostPathNotAllowedException(
                $"{what} {Describe(path, real)} is outside the image directories ({Join(_imageRoots)}) and the kernel roots ({Join(_kernelRoots.Skip(_imageRoots.Count))}); " +
                $"to allow it on purpose, add its directory to the vistarad setting {HostAccessOptions.KernelRootsSetting} (--{HostAccessOptions.KernelRootsSetting})");
        }

        if (kind is not (HostFileKind.Regular or HostFileKind.Missing))
        {
            throw new HostPathNotAllowedException($"{what} {Describe(path, real)} is a {Name(kind)}; a {what} must be a regular file");
        }

        return real;
    }

    /// <summary>
    /// A volume's host path: a regular file under a volume root (or, read-only, under an image directory: an image's
    /// shared root file system), or a block device listed by path. Scratch disks (no host path) pass: the driver makes them.
    /// Returns the resolved path ("" for a scratch disk).
    /// </summary>
    public string CheckVolume(VolumeSpec volume, string? field = null)
    {
        field ??= VolumeField(volume);
        if (volume.HostPath.Length == 0)
        {
            return "";
        }

        RequireAbsoluteWithoutDotDot(field, " host_path", volume.HostPath);
        var (real, kind) = HostFiles.RealPathAndKind(volume.HostPath);
        var listed = _blockDevices.Contains(volume.HostPath, StringComparer.Ordinal) || _blockDevices.Contains(real, StringComparer.Ordinal);
        if (kind == HostFileKind.BlockDevice || listed)
        {
            if (!listed)
            {
                throw new HostPathNotAllowedException(
                    $"{field}: {Describe(volume.HostPath, real)} is a block device that is not listed; to allow it on purpose, " +
                    $"add {real} to the vistarad setting {HostAccessOptions.BlockDevicesSetting} (--{HostAccessOptions.BlockDevicesSetting})");
            }

            return kind is HostFileKind.BlockDevice or HostFileKind.Missing
                ? real
                : throw new HostPathNotAllowedException($"{field}: {Describe(volume.HostPath, real)} is listed in {HostAccessOptions.BlockDevicesSetting} but is a {Name(kind)}, not a block device");
        }

        var underVolumes = IsUnderAny(real, _volumeRoots);
        var underImages = volume.IsReadOnly && IsUnderAny(real, _imageRoots);
        if (!underVolumes && !underImages)
        {
            throw new HostPathNotAllowedException(
                $"{field}: {Describe(volume.HostPath, real)} is outside the volume roots ({Join(_volumeRoots)}); to allow it on purpose, " +
                $"add its directory to the vistarad setting {HostAccessOptions.VolumeRootsSetting} (--{HostAccessOptions.VolumeRootsSetting})" +
                (volume.IsReadOnly ? "" : "; read-only volumes may also come from the image directories"));
        }

        return kind is HostFileKind.Regular or HostFileKind.Missing
            ? real
            : throw new HostPathNotAllowedException($"{field}: {Describe(volume.HostPath, real)} is a {Name(kind)}; a volume must be a regular file or a listed block device");
    }

    /// <summary>
    /// Images (issue 11): a file a start step made for this VM and vouched for (a cached kernel, initrd or disk), for
    /// a field whose stored spec held an OCI reference. It need not be under a configured root (no caller named it),
    /// but it must be listed in <paramref name="trusted"/>, absolute, without "..", and a regular file. Returns the resolved path.
    /// </summary>
    public string CheckTrusted(string field, string path, ICollection<string> trusted)
    {
        if (!trusted.Contains(path))
        {
            throw new HostPathNotAllowedException($"{field}: {path} was not prepared for this VM by a start step");
        }

        RequireAbsoluteWithoutDotDot(field, "", path);
        var (real, kind) = HostFiles.RealPathAndKind(path);
        return kind == HostFileKind.Regular
            ? real
            : throw new HostPathNotAllowedException($"{field}: {Describe(path, real)} is {(kind == HostFileKind.Missing ? "missing" : "a " + Name(kind))}; the image cache must hold a regular file there");
    }

    /// <summary>
    /// Whether scratch disks of these sizes may be made in <paramref name="directory"/>: their sum within the per-VM
    /// limit, and enough free space left afterwards (counted as if fully written, though the files are sparse).
    /// </summary>
    /// <exception cref="ScratchDiskRefusedException">they may not; nothing is created.</exception>
    public void CheckScratchDisks(IReadOnlyCollection<VolumeSpec> scratch, string directory)
    {
        var total = scratch.Sum(v => (long)(v.SizeInMb ?? 0));
        if (total == 0)
        {
            return;
        }

        if (total > Options.MaxScratchDiskMiBPerVm)
        {
            throw new ScratchDiskRefusedException(
                $"scratch disks of {total} MiB exceed the per-VM limit of {Options.MaxScratchDiskMiBPerVm} MiB " +
                $"(vistarad setting {HostAccessOptions.MaxScratchSetting}); ask for smaller disks");
        }

        var free = _freeBytes(directory) / (1024 * 1024);
        if (free - total < Options.MinFreeDiskMiB)
        {
            throw new ScratchDiskRefusedException(
                $"scratch disks of {total} MiB would leave {Math.Max(free - total, 0)} MiB free in {directory}, below the " +
                $"{Options.MinFreeDiskMiB} MiB kept free (vistarad setting {HostAccessOptions.MinFreeSetting}); free space on the node or ask for smaller disks");
        }
    }

    /// <summary>root_volume and additional_volumes with the spec field each came from.</summary>
    public static IEnumerable<(VolumeSpec Volume, string Field)> Volumes(MicroVmSpec spec)
    {
        if (spec.RootVolume is not null)
        {
            yield return (spec.RootVolume, RootVolumeField);
        }

        foreach (var v in spec.AdditionalVolumes)
        {
            yield return (v, VolumeField(v));
        }
    }

    /// <summary>How a message names the root volume (<see cref="Volumes"/>).</summary>
    public const string RootVolumeField = "root_volume";

    /// <summary>How a message names an additional volume (<see cref="Volumes"/>).</summary>
    public static string VolumeField(VolumeSpec volume) => $"volume \"{volume.Id}\"";

    /// <param name="field">The spec field, as <paramref name="field"/> + <paramref name="suffix"/> (joined only for a message).</param>
    private static void RequireAbsoluteWithoutDotDot(string field, string suffix, string path)
    {
        if (!path.StartsWith('/'))
        {
            throw new HostPathNotAllowedException($"{field}{suffix} \"{path}\" must be an absolute path (or, for kernel.image, the name of an image)");
        }

        if (HasDotDot(path))
        {
            throw new HostPathNotAllowedException($"{field}{suffix} \"{path}\" contains \"..\"; name the file directly");
        }
    }

    /// <summary>Whether a "/"-separated component is exactly "..".</summary>
    private static bool HasDotDot(string path)
    {
        foreach (var part in path.AsSpan().Split('/'))
        {
            if (path.AsSpan(part).SequenceEqual(".."))
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsUnder(string path, string root) =>
        root == "/" || path == root ||
        (path.Length > root.Length && path[root.Length] == '/' && path.StartsWith(root, StringComparison.Ordinal));

    private static bool IsUnderAny(string path, IReadOnlyList<string> roots)
    {
        for (var i = 0; i < roots.Count; i++)
        {
            if (IsUnder(path, roots[i]))
            {
                return true;
            }
        }

        return false;
    }

    private static string Root(string path) => HostFiles.RealPath(Path.GetFullPath(path)).TrimEnd('/') is { Length: > 0 } r ? r : "/";

    private static string Describe(string path, string real) => path == real ? path : $"{path} (resolves to {real})";

    private static string Join(IEnumerable<string> roots) => roots.ToList() is { Count: > 0 } list ? string.Join(", ", list) : "none";

    private static string Name(HostFileKind kind) => kind switch
    {
        HostFileKind.Directory => "directory",
        HostFileKind.BlockDevice => "block device",
        HostFileKind.CharacterDevice => "character device",
        HostFileKind.Fifo => "FIFO",
        HostFileKind.Socket => "socket",
        _ => "special file",
    };

    private static long FreeBytes(string directory)
    {
        var existing = directory;
        while (!Directory.Exists(existing) && Path.GetDirectoryName(existing) is { } parent)
        {
            existing = parent;
        }

        return new DriveInfo(existing).AvailableFreeSpace;
    }
}

namespace Hypercore.HostAccess;

/// <summary>
/// Which host files a VM may be given (configuration section "HostAccess"). The daemon runs as root, so nothing a
/// caller names is trusted: kernels come from image directories, volumes from volume roots, block devices only by
/// name. Every list holds absolute paths; symlinks in them are resolved once when the policy is built.
/// </summary>
public sealed class HostAccessOptions
{
    public const string Section = "HostAccess";

    /// <summary>Setting names as spelled on vistarad's command line and in its TOML file (named in refusals).</summary>
    public const string KernelRootsSetting = "kernel-roots";
    public const string VolumeRootsSetting = "volume-roots";
    public const string BlockDevicesSetting = "allowed-block-devices";
    public const string MaxScratchSetting = "max-scratch-disk-mib";
    public const string MinFreeSetting = "min-free-disk-mib";

    /// <summary>The node's image directories (named images live here). Kernels, initrds and read-only image disks may come from them.</summary>
    public List<string> ImageDirectories { get; set; } = ["/var/lib/hypercore/images"];

    /// <summary>More directories kernels and initrds may come from (absolute kernel.image paths). Default none.</summary>
    public List<string> KernelRoots { get; set; } = [];

    /// <summary>Directories volume host paths may be under. Default &lt;state-dir&gt;/volumes.</summary>
    public List<string> VolumeRoots { get; set; } = ["/var/lib/hypercore/volumes"];

    /// <summary>Block devices a volume may name, each by its path (e.g. /dev/vg0/vm-data). Default none.</summary>
    public List<string> AllowedBlockDevices { get; set; } = [];

    /// <summary>Upper bound for the scratch disks of one VM together, in MiB. Default 65536 (64 GiB).</summary>
    public long MaxScratchDiskMiBPerVm { get; set; } = 65536;

    /// <summary>Scratch disks are refused when making them would leave less than this free on the state directory. Default 1024.</summary>
    public long MinFreeDiskMiB { get; set; } = 1024;
}

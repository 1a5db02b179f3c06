using System.Globalization;
using Hypercore.HostAccess;
using Microsoft.Extensions.Options;

namespace Hypercore.Daemon.Configuration;

/// <summary>Which host files VMs may be given (see <see cref="HostAccessOptions"/>). Lists are comma-separated absolute paths.</summary>
public sealed partial class DaemonOptions
{
    /// <summary>Directories kernels and initrds may come from besides &lt;state-dir&gt;/images; default none.</summary>
    public string? KernelRoots { get; set; }

    /// <summary>Directories volume host paths may be under; default &lt;state-dir&gt;/volumes.</summary>
    public string? VolumeRoots { get; set; }

    /// <summary>Block devices a volume may name, by path; default none.</summary>
    public string? AllowedBlockDevices { get; set; }

    /// <summary>Upper bound of one VM's scratch disks together, MiB; default 65536.</summary>
    public string? MaxScratchDiskMiB { get; set; }

    /// <summary>Free space kept on the state directory when making scratch disks, MiB; default 1024.</summary>
    public string? MinFreeDiskMiB { get; set; }

    public string VolumeDirectory => Path.Combine(StateDirectory, "volumes");
}

/// <summary>The host-access settings: flags and TOML keys of the same name, like the rest of <see cref="DaemonSettings"/>.</summary>
public static class HostAccessSettings
{
    public static readonly DaemonSetting KernelRoots = new(HostAccessOptions.KernelRootsSetting, "Daemon:KernelRoots",
        "more directories kernels/initrds may come from (comma-separated); default only <state-dir>/images", "dirs");
    public static readonly DaemonSetting VolumeRoots = new(HostAccessOptions.VolumeRootsSetting, "Daemon:VolumeRoots",
        "directories volume host paths may be under (comma-separated); default <state-dir>/volumes", "dirs");
    public static readonly DaemonSetting AllowedBlockDevices = new(HostAccessOptions.BlockDevicesSetting, "Daemon:AllowedBlockDevices",
        "block devices volumes may name, by path (comma-separated); default none", "paths");
    public static readonly DaemonSetting MaxScratchDiskMiB = new(HostAccessOptions.MaxScratchSetting, "Daemon:MaxScratchDiskMiB",
        "upper bound of one VM's scratch disks together, in MiB; default 65536", "MiB");
    public static readonly DaemonSetting MinFreeDiskMiB = new(HostAccessOptions.MinFreeSetting, "Daemon:MinFreeDiskMiB",
        "free space kept on the state directory when making scratch disks, in MiB; default 1024", "MiB");

    public static readonly IReadOnlyList<DaemonSetting> All = [KernelRoots, VolumeRoots, AllowedBlockDevices, MaxScratchDiskMiB, MinFreeDiskMiB];

    /// <summary>The policy's options from the daemon's settings (values the validator refuses keep their defaults).</summary>
    public static HostAccessOptions ToOptions(DaemonOptions d)
    {
        var o = new HostAccessOptions
        {
            ImageDirectories = [d.ImageDirectory],
            KernelRoots = List(d.KernelRoots),
            VolumeRoots = d.VolumeRoots is null ? [d.VolumeDirectory] : List(d.VolumeRoots),
            AllowedBlockDevices = List(d.AllowedBlockDevices),
        };
        o.MaxScratchDiskMiBPerVm = ParseMiB(d.MaxScratchDiskMiB) ?? o.MaxScratchDiskMiBPerVm;
        o.MinFreeDiskMiB = ParseMiB(d.MinFreeDiskMiB) ?? o.MinFreeDiskMiB;
        return o;
    }

    internal static List<string> List(string? value) =>
        (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    internal static long? ParseMiB(string? value) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var mib) ? mib : null;
}

/// <summary>Checks the host-access settings at start (exit 2 naming the setting).</summary>
internal sealed class HostAccessSettingsValidator : IValidateOptions<DaemonOptions>
{
    public ValidateOptionsResult Validate(string? name, DaemonOptions o)
    {
        var errors = new List<string>();
        foreach (var (setting, value) in new[]
        {
            (HostAccessSettings.KernelRoots, o.KernelRoots),
            (HostAccessSettings.VolumeRoots, o.VolumeRoots),
            (HostAccessSettings.AllowedBlockDevices, o.AllowedBlockDevices),
        })
        {
            foreach (var path in HostAccessSettings.List(value).Where(p => !Path.IsPathFullyQualified(p) || p.Split('/').Contains("..")))
            {
                errors.Add($"{setting.Name}: \"{path}\" must be an absolute path without \"..\"");
            }

            if (value is not null && HostAccessSettings.List(value).Contains("/"))
            {
                errors.Add($"{setting.Name}: \"/\" would hand every file on the node to callers; name the directories");
            }
        }

        foreach (var (setting, value) in new[] { (HostAccessSettings.MaxScratchDiskMiB, o.MaxScratchDiskMiB), (HostAccessSettings.MinFreeDiskMiB, o.MinFreeDiskMiB) })
        {
            if (value is not null && HostAccessSettings.ParseMiB(value) is null)
            {
                errors.Add($"{setting.Name}: \"{value}\" must be a whole number of MiB, 0 or more");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

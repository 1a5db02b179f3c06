using System.Globalization;
using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Unikernel;
using Microsoft.Extensions.Options;

namespace Hypercore.Daemon.Configuration;

/// <summary>
/// The drivers' binaries. Each is null when not given: the driver keeps its own default (a bare name looked up on
/// PATH). A binary that is given but missing is not a settings error: the provider is reported unusable at start,
/// and a VM asking for it gets ProviderUnavailable naming the path, as with the defaults.
/// </summary>
public sealed partial class DaemonOptions
{
    /// <summary>firecracker executable; default "firecracker" on PATH.</summary>
    public string? FirecrackerBinary { get; set; }

    /// <summary>Firecracker's jailer; given, every firecracker VM runs through it (needs <see cref="JailerUid"/> and <see cref="JailerGid"/>).</summary>
    public string? JailerBinary { get; set; }

    /// <summary>Unprivileged uid the jailer drops to (a number).</summary>
    public string? JailerUid { get; set; }

    /// <summary>Unprivileged gid the jailer drops to (a number).</summary>
    public string? JailerGid { get; set; }

    /// <summary>cloud-hypervisor executable; default "cloud-hypervisor" on PATH.</summary>
    public string? CloudHypervisorBinary { get; set; }

    /// <summary>NanoVMs ops; given, unikernels run through <c>ops instance create -t onprem</c>, else QEMU boots them directly.</summary>
    public string? OpsBinary { get; set; }

    /// <summary>OPS_HOME for ops (images/, instances/); default $OPS_HOME, else ~/.ops.</summary>
    public string? OpsHome { get; set; }

    /// <summary>QEMU for unikernels booted directly (no ops); default "qemu-system-x86_64" on PATH.</summary>
    public string? UnikernelQemuBinary { get; set; }
}

/// <summary>The driver settings: flags and TOML keys of the same name, like the rest of <see cref="DaemonSettings"/>.</summary>
public static class DriverSettings
{
    public static readonly DaemonSetting FirecrackerBinary = new("firecracker-bin", "Daemon:FirecrackerBinary", "firecracker binary; default firecracker on PATH", "path");
    public static readonly DaemonSetting JailerBinary = new("jailer-bin", "Daemon:JailerBinary", "run firecracker through this jailer (needs --jailer-uid, --jailer-gid); default no jailer", "path");
    public static readonly DaemonSetting JailerUid = new("jailer-uid", "Daemon:JailerUid", "uid the jailer drops to", "uid");
    public static readonly DaemonSetting JailerGid = new("jailer-gid", "Daemon:JailerGid", "gid the jailer drops to", "gid");
    public static readonly DaemonSetting CloudHypervisorBinary = new("cloud-hypervisor-bin", "Daemon:CloudHypervisorBinary", "cloud-hypervisor binary; default cloud-hypervisor on PATH", "path");
    public static readonly DaemonSetting OpsBinary = new("ops-bin", "Daemon:OpsBinary", "run unikernels through this NanoVMs ops (onprem); default: QEMU boots them directly", "path");
    public static readonly DaemonSetting OpsHome = new("ops-home", "Daemon:OpsHome", "OPS_HOME for --ops-bin; default $OPS_HOME, else ~/.ops", "dir");
    public static readonly DaemonSetting UnikernelQemuBinary = new("unikernel-qemu-bin", "Daemon:UnikernelQemuBinary", "QEMU for unikernels booted directly; default qemu-system-x86_64", "path");

    public static readonly IReadOnlyList<DaemonSetting> All =
        [FirecrackerBinary, JailerBinary, JailerUid, JailerGid, CloudHypervisorBinary, OpsBinary, OpsHome, UnikernelQemuBinary];

    /// <summary>
    /// Copies the given settings into the Firecracker driver's options; what is not given keeps the driver's default.
    /// A value the daemon's validator refuses is not copied, so its message is the only one.
    /// </summary>
    public static void ApplyTo(DaemonOptions d, FirecrackerOptions o)
    {
        o.BinaryPath = Given(d.FirecrackerBinary) ?? o.BinaryPath;
        if (Given(d.JailerBinary) is { } jailer && ParseId(d.JailerUid) is { } uid && ParseId(d.JailerGid) is { } gid)
        {
            o.Jailer.Enabled = true;
            o.Jailer.BinaryPath = jailer;
            o.Jailer.Uid = uid;
            o.Jailer.Gid = gid;
        }
    }

    public static void ApplyTo(DaemonOptions d, CloudHypervisorOptions o) => o.BinaryPath = Given(d.CloudHypervisorBinary) ?? o.BinaryPath;

    public static void ApplyTo(DaemonOptions d, UnikernelOptions o)
    {
        o.OpsPath = Given(d.OpsBinary) ?? o.OpsPath;
        o.OpsHome = d.OpsHome is { } home && Path.IsPathFullyQualified(home) ? home : o.OpsHome;
        o.QemuPath = Given(d.UnikernelQemuBinary) ?? o.QemuPath;
    }

    private static string? Given(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    internal static int? ParseId(string? value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : null;
}

/// <summary>
/// Checks the driver settings with the daemon's other settings (a second validator of <see cref="DaemonOptions"/>),
/// naming them as spelled on the command line and in the TOML file: a given path must not be empty, the jailer ids
/// must be numbers and come with the jailer, ops-home must be absolute and come with ops.
/// </summary>
internal sealed class DriverSettingsValidator : IValidateOptions<DaemonOptions>
{
    public ValidateOptionsResult Validate(string? name, DaemonOptions o)
    {
        var errors = new List<string>();
        foreach (var (setting, value) in new[]
        {
            (DriverSettings.FirecrackerBinary, o.FirecrackerBinary),
            (DriverSettings.JailerBinary, o.JailerBinary),
            (DriverSettings.CloudHypervisorBinary, o.CloudHypervisorBinary),
            (DriverSettings.OpsBinary, o.OpsBinary),
            (DriverSettings.UnikernelQemuBinary, o.UnikernelQemuBinary),
        })
        {
            if (value is not null && string.IsNullOrWhiteSpace(value))
            {
                errors.Add($"{setting.Name}: must not be empty (leave it out for the default)");
            }
        }

        foreach (var (setting, value) in new[] { (DriverSettings.JailerUid, o.JailerUid), (DriverSettings.JailerGid, o.JailerGid) })
        {
            if (o.JailerBinary is null)
            {
                if (value is not null)
                {
                    errors.Add($"{setting.Name}: only applies with {DriverSettings.JailerBinary.Name}");
                }
            }
            else if (value is null)
            {
                errors.Add($"{setting.Name}: required with {DriverSettings.JailerBinary.Name} (the unprivileged id firecracker runs as)");
            }
            else if (DriverSettings.ParseId(value) is null)
            {
                errors.Add($"{setting.Name}: \"{value}\" must be a number, 0 or more");
            }
        }

        if (o.OpsHome is not null)
        {
            if (o.OpsBinary is null)
            {
                errors.Add($"{DriverSettings.OpsHome.Name}: only applies with {DriverSettings.OpsBinary.Name}");
            }
            else if (!Path.IsPathFullyQualified(o.OpsHome))
            {
                errors.Add($"{DriverSettings.OpsHome.Name}: \"{o.OpsHome}\" must be an absolute path");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

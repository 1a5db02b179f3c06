using System.Globalization;
using Hypercore.Consoles;
using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Firecracker;
using Microsoft.Extensions.Options;

namespace Hypercore.Daemon.Configuration;

public sealed partial class DaemonOptions
{
    /// <summary>Largest console log before it is rotated to console.log.1, in bytes (a number). Default 16 MiB.</summary>
    public string? ConsoleLogMaxBytes { get; set; }

    /// <summary>The KVM device firecracker and cloud-hypervisor require before they are reported usable. Default /dev/kvm.</summary>
    public string? KvmDevice { get; set; }
}

/// <summary>Console log cap and KVM device: flags and TOML keys of the same name.</summary>
public static class NodeDeviceAndConsoleSettings
{
    public static readonly DaemonSetting ConsoleLogMaxBytes = new("console-log-max-bytes", "Daemon:ConsoleLogMaxBytes",
        "largest console log, in bytes, before it is rotated to console.log.1 (one rotated part kept); default 16777216 (16 MiB)", "bytes");

    public static readonly DaemonSetting KvmDevice = new("kvm-device", "Daemon:KvmDevice",
        "KVM device firecracker and cloud-hypervisor need before they are reported usable; default /dev/kvm", "path");

    public static readonly IReadOnlyList<DaemonSetting> All = [ConsoleLogMaxBytes, KvmDevice];

    public static void ApplyTo(DaemonOptions d, ConsoleLogOptions o) => o.MaxBytes = ParseBytes(d.ConsoleLogMaxBytes) ?? o.MaxBytes;

    public static void ApplyTo(DaemonOptions d, FirecrackerOptions o) => o.KvmDevicePath = Given(d.KvmDevice) ?? o.KvmDevicePath;

    public static void ApplyTo(DaemonOptions d, CloudHypervisorOptions o) => o.KvmDevicePath = Given(d.KvmDevice) ?? o.KvmDevicePath;

    internal static long? ParseBytes(string? value) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var bytes) ? bytes : null;

    private static string? Given(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}

/// <summary>Checks the two settings with the daemon's others, naming them as spelled on the command line and in TOML.</summary>
internal sealed class NodeDeviceAndConsoleSettingsValidator : IValidateOptions<DaemonOptions>
{
    public ValidateOptionsResult Validate(string? name, DaemonOptions o)
    {
        var errors = new List<string>();
        if (o.ConsoleLogMaxBytes is { } max &&
            (NodeDeviceAndConsoleSettings.ParseBytes(max) is not { } bytes || bytes < ConsoleLogOptions.MinMaxBytes))
        {
            errors.Add($"{NodeDeviceAndConsoleSettings.ConsoleLogMaxBytes.Name}: \"{max}\" must be a whole number of bytes, at least {ConsoleLogOptions.MinMaxBytes}");
        }

        if (o.KvmDevice is { } kvm && !Path.IsPathFullyQualified(kvm))
        {
            errors.Add($"{NodeDeviceAndConsoleSettings.KvmDevice.Name}: \"{kvm}\" must be an absolute path");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.CloudHypervisor;

/// <summary>Cloud Hypervisor driver settings (configuration section "CloudHypervisor").</summary>
public sealed class CloudHypervisorOptions
{
    public const string Section = "CloudHypervisor";

    /// <summary>The cloud-hypervisor executable: a path, or a bare name looked up on PATH. Default "cloud-hypervisor".</summary>
    public string BinaryPath { get; set; } = "cloud-hypervisor";

    /// <summary>Per-VM directories (api.sock, vm.json, vmm.pid, console.log, vmm.log) live in RuntimeDirectory/&lt;uid&gt;/.</summary>
    public string RuntimeDirectory { get; set; } = "/var/lib/hypercore/run/cloud-hypervisor";

    /// <summary>Kernel command line when the spec has none.</summary>
    public string DefaultCmdline { get; set; } = "console=ttyS0 reboot=k panic=1";

    /// <summary>Report the provider unavailable when /dev/kvm is missing. Default true.</summary>
    public bool RequireKvm { get; set; } = true;

    /// <summary>The KVM device <see cref="RequireKvm"/> looks for. Default /dev/kvm.</summary>
    public string KvmDevicePath { get; set; } = Hypercore.Drivers.Vmm.KvmDevice.DefaultPath;

    /// <summary>Time from launching the process until GET vmm.ping answers. Default 10 s.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Timeout of one API request. Default 5 s (vm.boot of a large guest may need more).</summary>
    public TimeSpan ApiTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Retries of an API request whose connect failed (never of one that reached the VMM). Default 3.</summary>
    public int ApiConnectRetries { get; set; } = 3;

    /// <summary>After PUT vmm.shutdown, how long the process gets to exit before SIGKILL. Default 5 s.</summary>
    public TimeSpan VmmExitTimeout { get; set; } = TimeSpan.FromSeconds(5);
}

internal sealed class CloudHypervisorOptionsValidator : IValidateOptions<CloudHypervisorOptions>
{
    public ValidateOptionsResult Validate(string? name, CloudHypervisorOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.BinaryPath))
        {
            errors.Add("CloudHypervisor:BinaryPath must not be empty");
        }

        if (string.IsNullOrWhiteSpace(o.RuntimeDirectory) || !Path.IsPathRooted(o.RuntimeDirectory))
        {
            errors.Add($"CloudHypervisor:RuntimeDirectory must be an absolute path, got \"{o.RuntimeDirectory}\"");
        }

        if (string.IsNullOrWhiteSpace(o.KvmDevicePath) || !Path.IsPathFullyQualified(o.KvmDevicePath))
        {
            errors.Add($"CloudHypervisor:KvmDevicePath must be an absolute path, got \"{o.KvmDevicePath}\"");
        }

        if (o.StartTimeout <= TimeSpan.Zero || o.ApiTimeout <= TimeSpan.Zero || o.VmmExitTimeout <= TimeSpan.Zero)
        {
            errors.Add("CloudHypervisor:StartTimeout, ApiTimeout and VmmExitTimeout must be positive");
        }

        if (o.ApiConnectRetries is < 0 or > 20)
        {
            errors.Add($"CloudHypervisor:ApiConnectRetries must be between 0 and 20, got {o.ApiConnectRetries}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

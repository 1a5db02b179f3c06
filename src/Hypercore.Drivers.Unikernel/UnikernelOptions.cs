using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Unikernel;

/// <summary>Unikernel (NanoVMs) driver settings (configuration section "Unikernel").</summary>
public sealed class UnikernelOptions
{
    public const string Section = "Unikernel";

    /// <summary>Per-VM directories (qmp.sock, vm.json, vmm.pid, console.log, qemu.log) live in RuntimeDirectory/&lt;uid&gt;/.</summary>
    public string RuntimeDirectory { get; set; } = "/var/lib/hypercore/run/unikernel";

    /// <summary>
    /// The NanoVMs ops CLI. Empty (the default) boots the image directly with QEMU; set (a path or a name on PATH)
    /// to run instances through <c>ops instance create/list/delete -t onprem</c>.
    /// </summary>
    public string OpsPath { get; set; } = "";

    /// <summary>OPS_HOME for ops (its images/ and instances/); empty uses $OPS_HOME or ~/.ops.</summary>
    public string OpsHome { get; set; } = "";

    /// <summary>QEMU for the direct path: a path or a name on PATH. Default "qemu-system-x86_64".</summary>
    public string QemuPath { get; set; } = "qemu-system-x86_64";

    /// <summary>"auto" (KVM, falling back to TCG), "kvm" or "tcg". Use "tcg" where nested KVM cannot run guests.</summary>
    public string Accelerator { get; set; } = "auto";

    /// <summary>QEMU machine type; Nanos images boot from their MBR through SeaBIOS on q35 or pc. Default "q35".</summary>
    public string MachineType { get; set; } = "q35";

    /// <summary>Time for QEMU's QMP socket to answer, or for "ops instance create" to finish. Default 30 s.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Timeout of one QMP command. Default 5 s.</summary>
    public TimeSpan QmpTimeout { get; set; } = TimeSpan.FromSeconds(5);
}

internal sealed class UnikernelOptionsValidator : IValidateOptions<UnikernelOptions>
{
    public ValidateOptionsResult Validate(string? name, UnikernelOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.RuntimeDirectory) || !Path.IsPathRooted(o.RuntimeDirectory))
        {
            errors.Add($"Unikernel:RuntimeDirectory must be an absolute path, got \"{o.RuntimeDirectory}\"");
        }

        if (o.OpsPath.Length == 0 && string.IsNullOrWhiteSpace(o.QemuPath))
        {
            errors.Add("Unikernel:QemuPath must not be empty when Unikernel:OpsPath is not set");
        }

        if (o.Accelerator is not ("auto" or "kvm" or "tcg"))
        {
            errors.Add($"Unikernel:Accelerator must be auto, kvm or tcg, got \"{o.Accelerator}\"");
        }

        if (string.IsNullOrWhiteSpace(o.MachineType))
        {
            errors.Add("Unikernel:MachineType must not be empty");
        }

        if (o.OpsPath.Length > 0 && string.IsNullOrWhiteSpace(o.OpsPath))
        {
            errors.Add("Unikernel:OpsPath must not be empty (leave it out to boot unikernels with QEMU directly)");
        }

        if (o.OpsHome.Length > 0 && o.OpsPath.Length == 0)
        {
            errors.Add("Unikernel:OpsHome only applies with Unikernel:OpsPath");
        }
        else if (o.OpsHome.Length > 0 && !Path.IsPathRooted(o.OpsHome))
        {
            errors.Add($"Unikernel:OpsHome must be an absolute path, got \"{o.OpsHome}\"");
        }

        if (o.StartTimeout <= TimeSpan.Zero || o.QmpTimeout <= TimeSpan.Zero)
        {
            errors.Add("Unikernel:StartTimeout and Unikernel:QmpTimeout must be positive");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

using Hypercore.Drivers.Vmm;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Hypercore.Composition;

namespace Hypercore.Drivers.Unikernel;

/// <summary>
/// Unikernel (NanoVMs) driver settings (configuration section "Unikernel"). Accelerator "auto" lets QEMU try KVM,
/// then TCG; use "tcg" where nested KVM cannot run guests.
/// </summary>
public sealed class UnikernelOptions() : VmmQmpOptions("unikernel"), IConfigSection
{
    /// <summary>
    /// The NanoVMs ops CLI. Empty (the default) boots the image directly with QEMU; set (a path or a name on PATH)
    /// to run instances through <c>ops instance create/list/delete -t onprem</c>.
    /// </summary>
    public string OpsPath { get; set; } = "";

    /// <summary>OPS_HOME for ops (its images/ and instances/); empty uses $OPS_HOME or ~/.ops.</summary>
    public string OpsHome { get; set; } = "";

    /// <summary>QEMU for the direct path: a path or a name on PATH. Default "qemu-system-x86_64".</summary>
    public string QemuPath { get; set; } = "qemu-system-x86_64";

    /// <summary>QEMU machine type; Nanos images boot from their MBR through SeaBIOS on q35 or pc. Default "q35".</summary>
    public string MachineType { get; set; } = "q35";

    public const string Section = "Unikernel";

    static string IConfigSection.ConfigSection => Section;

    void IConfigSection.BindSection(IConfiguration section) => section.Bind(this);
}

internal sealed class UnikernelOptionsValidator : IValidateOptions<UnikernelOptions>
{
    public ValidateOptionsResult Validate(string? name, UnikernelOptions o)
    {
        var errors = o.QmpProblems(UnikernelOptions.Section);
        if (o.OpsPath.Length == 0 && string.IsNullOrWhiteSpace(o.QemuPath))
        {
            errors.Add("Unikernel:QemuPath must not be empty when Unikernel:OpsPath is not set");
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

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

public static class UnikernelServiceCollectionExtensions
{
    /// <summary>Adds the "unikernel" driver (section "Unikernel", then <paramref name="configure"/>, validated at start).</summary>
    public static IServiceCollection AddUnikernelDriver(this IServiceCollection services, Action<UnikernelOptions>? configure = null) =>
        services.AddVmmDriver<UnikernelDriver, UnikernelOptions, UnikernelOptionsValidator>(UnikernelDriver.ProviderName, configure, sp => new UnikernelDriver(
            sp.GetRequiredService<IOptions<UnikernelOptions>>(), sp.GetRequiredService<TimeProvider>(), sp.LoggerFor<UnikernelDriver>(), sp.GetService<HostAccess.HostPathPolicy>()));
}

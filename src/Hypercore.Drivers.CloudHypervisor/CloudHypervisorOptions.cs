using Hypercore.Drivers.Vmm;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Hypercore.Composition;

namespace Hypercore.Drivers.CloudHypervisor;

/// <summary>Cloud Hypervisor driver settings (configuration section "CloudHypervisor"); the shared ones are in <see cref="VmmApiOptions"/>.</summary>
public sealed class CloudHypervisorOptions() : VmmApiOptions("cloud-hypervisor", "console=ttyS0 reboot=k panic=1"), IConfigSection
{
    public const string Section = "CloudHypervisor";

    /// <summary>After PUT vmm.shutdown, how long the process gets to exit before SIGKILL. Default 5 s.</summary>
    public TimeSpan VmmExitTimeout { get; set; } = TimeSpan.FromSeconds(5);

    static string IConfigSection.ConfigSection => Section;

    void IConfigSection.BindSection(IConfiguration section) => section.Bind(this);
}

internal sealed class CloudHypervisorOptionsValidator : IValidateOptions<CloudHypervisorOptions>
{
    public ValidateOptionsResult Validate(string? name, CloudHypervisorOptions o)
    {
        var errors = o.ApiProblems(CloudHypervisorOptions.Section);
        if (o.VmmExitTimeout <= TimeSpan.Zero)
        {
            errors.Add("CloudHypervisor:VmmExitTimeout must be positive");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

public static class CloudHypervisorServiceCollectionExtensions
{
    /// <summary>
    /// Registers the "cloud-hypervisor" driver: options from the "CloudHypervisor" section, then
    /// <paramref name="configure"/>; validated at start.
    /// </summary>
    public static IServiceCollection AddCloudHypervisorDriver(this IServiceCollection services, Action<CloudHypervisorOptions>? configure = null)
        => services.AddVmmDriver<CloudHypervisorDriver, CloudHypervisorOptions, CloudHypervisorOptionsValidator>(CloudHypervisorDriver.ProviderName, configure, sp => new CloudHypervisorDriver(
            sp.GetRequiredService<IOptions<CloudHypervisorOptions>>(), sp.GetRequiredService<TimeProvider>(), sp.LoggerFor<CloudHypervisorDriver>(), sp.GetService<HostAccess.HostPathPolicy>()));
}

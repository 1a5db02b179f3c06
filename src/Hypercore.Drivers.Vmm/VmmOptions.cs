using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Vmm;

/// <summary>The settings every <see cref="VmmDriver"/> has; each driver's options class adds its own.</summary>
public abstract class VmmOptions
{
    protected VmmOptions(string provider, TimeSpan startTimeout)
    {
        RuntimeDirectory = $"/var/lib/hypercore/run/{provider}";
        StartTimeout = startTimeout;
    }

    /// <summary>Per-VM directories (control socket, vm.json, vmm.pid, console.log) live in RuntimeDirectory/&lt;uid&gt;/.</summary>
    public string RuntimeDirectory { get; set; }

    /// <summary>Upper bound for the VMM to answer on its control socket after launch.</summary>
    public TimeSpan StartTimeout { get; set; }

    /// <summary>The problems of the shared settings, named "&lt;section&gt;:&lt;key&gt;".</summary>
    public List<string> Problems(string section)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(RuntimeDirectory) || !Path.IsPathRooted(RuntimeDirectory))
        {
            errors.Add($"{section}:RuntimeDirectory must be an absolute path, got \"{RuntimeDirectory}\"");
        }

        if (StartTimeout <= TimeSpan.Zero)
        {
            errors.Add($"{section}:StartTimeout must be positive");
        }

        return errors;
    }
}

/// <summary>Settings of a VMM driven over an HTTP API on a Unix socket (Firecracker, Cloud Hypervisor).</summary>
public abstract class VmmApiOptions(string provider, string defaultCmdline) : VmmOptions(provider, TimeSpan.FromSeconds(10))
{
    /// <summary>Kernel command line when the spec has none.</summary>
    public string DefaultCmdline { get; set; } = defaultCmdline;

    /// <summary>The executable: a path, or a bare name looked up on PATH.</summary>
    public string BinaryPath { get; set; } = provider;

    /// <summary>Report the provider unavailable when <see cref="KvmDevicePath"/> is missing. Default true.</summary>
    public bool RequireKvm { get; set; } = true;

    /// <summary>The KVM device <see cref="RequireKvm"/> looks for (the daemon's kvm-device). Default /dev/kvm.</summary>
    public string KvmDevicePath { get; set; } = KvmDevice.DefaultPath;

    /// <summary>Timeout of one API request. Default 5 s.</summary>
    public TimeSpan ApiTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Retries of an API request whose connect failed (never of one that reached the VMM). Default 3.</summary>
    public int ApiConnectRetries { get; set; } = 3;

    public ApiPolicy ApiPolicy => new(ApiTimeout, ApiConnectRetries, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1));

    public List<string> ApiProblems(string section)
    {
        var errors = Problems(section);
        if (string.IsNullOrWhiteSpace(BinaryPath))
        {
            errors.Add($"{section}:BinaryPath must not be empty");
        }

        if (string.IsNullOrWhiteSpace(KvmDevicePath) || !Path.IsPathFullyQualified(KvmDevicePath))
        {
            errors.Add($"{section}:KvmDevicePath must be an absolute path, got \"{KvmDevicePath}\"");
        }

        if (ApiTimeout <= TimeSpan.Zero)
        {
            errors.Add($"{section}:ApiTimeout must be positive");
        }

        if (ApiConnectRetries is < 0 or > 20)
        {
            errors.Add($"{section}:ApiConnectRetries must be between 0 and 20, got {ApiConnectRetries}");
        }

        return errors;
    }
}

/// <summary>Settings of a QEMU controlled over QMP (the qemu and unikernel drivers).</summary>
public abstract class VmmQmpOptions(string provider) : VmmOptions(provider, TimeSpan.FromSeconds(30))
{
    public static readonly IReadOnlyList<string> Accelerators = ["auto", "kvm", "tcg"];

    /// <summary>"auto" (default), "kvm" or "tcg"; what "auto" does is the driver's (see its options).</summary>
    public string Accelerator { get; set; } = "auto";

    /// <summary>Timeout of one QMP command. Default 5 s.</summary>
    public TimeSpan QmpTimeout { get; set; } = TimeSpan.FromSeconds(5);

    public List<string> QmpProblems(string section)
    {
        var errors = Problems(section);
        if (!Accelerators.Contains(Accelerator?.Trim().ToLowerInvariant() ?? "auto"))
        {
            errors.Add($"{section}:Accelerator must be auto, kvm or tcg, got \"{Accelerator}\"");
        }

        if (QmpTimeout <= TimeSpan.Zero)
        {
            errors.Add($"{section}:QmpTimeout must be positive");
        }

        return errors;
    }
}

public static class VmmServiceCollectionExtensions
{
    /// <summary>
    /// The one registration line of a hypervisor: its options bind from their configuration section when the host has an IConfiguration, then <paramref name="configure"/> runs;
    /// they are validated at start by <typeparamref name="TValidator"/>; the driver joins the registry as
    /// <paramref name="providerName"/>. Calling it twice adds nothing twice.
    /// </summary>
    public static IServiceCollection AddVmmDriver<
        TDriver,
        [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)] TOptions,
        TValidator>(this IServiceCollection services, string providerName, Action<TOptions>? configure, Func<IServiceProvider, TDriver> create)
        where TDriver : class, IHypervisorDriver
        where TOptions : class, IConfigSection
        where TValidator : class, IValidateOptions<TOptions>, new()
    {
        // Factories, not implementation types (the driver's from the caller): Hypercore.Composition.ServiceFactories says why.
        var options = services.AddOptions<TOptions>();
        // Once, however often this is called, so a later call cannot rebind over an earlier configure.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<TOptions>, SectionBinder<TOptions>>(sp => new SectionBinder<TOptions>(sp)));
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TOptions>, TValidator>(_ => new TValidator()));
        services.TryAddSingleton(TimeProvider.System);
        return services.AddHypervisorDriver(providerName, create);
    }
}

/// <summary>Options that name their configuration section (e.g. "Firecracker") and bind themselves from it.</summary>
public interface IConfigSection
{
    static abstract string ConfigSection { get; }

    /// <summary>
    /// <c>section.Bind(this)</c> in the sealed options class, where the configuration binder's source generator sees
    /// the concrete type and writes the binding code: Native AOT cannot bind through reflection, and a generic
    /// <c>Bind(TOptions)</c> here would be exactly that.
    /// </summary>
    void BindSection(IConfiguration section);
}

/// <summary>Binds the section when the host has configuration (tests and tools compose drivers without one).</summary>
internal sealed class SectionBinder<TOptions>(IServiceProvider services) : IConfigureOptions<TOptions>
    where TOptions : class, IConfigSection
{
    public void Configure(TOptions options)
    {
        if (services.GetService<IConfiguration>() is { } configuration)
        {
            options.BindSection(configuration.GetSection(TOptions.ConfigSection));
        }
    }
}

using Hypercore.Drivers.Vmm;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Hypercore.Composition;

namespace Hypercore.Drivers.Firecracker;

/// <summary>Firecracker driver settings (configuration section "Firecracker"); the shared ones are in <see cref="VmmApiOptions"/>.</summary>
/// <remarks>The default command line has reboot=k: Ctrl-Alt-Del then ends the VMM (the graceful stop).</remarks>
public sealed class FirecrackerOptions() : VmmApiOptions("firecracker", "console=ttyS0 reboot=k panic=1 pci=off"), IConfigSection
{
    /// <summary>Run firecracker through the jailer (chroot, uid/gid drop, cgroups).</summary>
    public JailerOptions Jailer { get; set; } = new();

    /// <summary>MMDS version for PUT /mmds/config ("V1" or "V2"). Default "V2".</summary>
    public string MmdsVersion { get; set; } = "V2";

    public const string Section = "Firecracker";

    public static string ConfigSection => Section;

    void IConfigSection.BindSection(IConfiguration section) => section.Bind(this);
}

/// <summary>Jailer settings (section "Firecracker:Jailer").</summary>
public sealed class JailerOptions
{
    public bool Enabled { get; set; }

    /// <summary>The jailer executable: a path or a name on PATH. Default "jailer".</summary>
    public string BinaryPath { get; set; } = "jailer";

    /// <summary>Unprivileged uid firecracker runs as. Required when enabled.</summary>
    public int Uid { get; set; } = -1;

    /// <summary>Unprivileged gid firecracker runs as. Required when enabled.</summary>
    public int Gid { get; set; } = -1;

    /// <summary>Jails are &lt;ChrootBaseDir&gt;/firecracker/&lt;uid&gt;/root. Default /srv/jailer.</summary>
    public string ChrootBaseDir { get; set; } = "/srv/jailer";

    /// <summary>1 or 2. Default 2.</summary>
    public int CgroupVersion { get; set; } = 2;

    /// <summary>Parent cgroup (jailer --parent-cgroup); empty uses the jailer default.</summary>
    public string ParentCgroup { get; set; } = "";

    /// <summary>cgroup settings passed as --cgroup, e.g. "cpu.max=50000 100000" or "memory.max=268435456".</summary>
    public IList<string> Cgroups { get; set; } = [];

    /// <summary>Network namespace path (jailer --netns), e.g. /var/run/netns/vms; empty keeps the host's.</summary>
    public string NetNs { get; set; } = "";
}

internal sealed class FirecrackerOptionsValidator : IValidateOptions<FirecrackerOptions>
{
    public ValidateOptionsResult Validate(string? name, FirecrackerOptions o)
    {
        var errors = o.ApiProblems(FirecrackerOptions.Section);
        if (o.MmdsVersion is not ("V1" or "V2"))
        {
            errors.Add($"Firecracker:MmdsVersion must be V1 or V2, got \"{o.MmdsVersion}\"");
        }

        var j = o.Jailer;
        if (j.Enabled)
        {
            if (string.IsNullOrWhiteSpace(j.BinaryPath))
            {
                errors.Add("Firecracker:Jailer:BinaryPath must not be empty");
            }

            foreach (var (key, id) in new[] { ("Firecracker:Jailer:Uid", j.Uid), ("Firecracker:Jailer:Gid", j.Gid) })
            {
                if (id < 0)
                {
                    errors.Add($"{key} is required with Firecracker:Jailer:BinaryPath (the unprivileged id firecracker runs as)");
                }
            }

            if (!Path.IsPathRooted(j.ChrootBaseDir))
            {
                errors.Add($"Firecracker:Jailer:ChrootBaseDir must be an absolute path, got \"{j.ChrootBaseDir}\"");
            }

            if (j.CgroupVersion is not (1 or 2))
            {
                errors.Add($"Firecracker:Jailer:CgroupVersion must be 1 or 2, got {j.CgroupVersion}");
            }

            foreach (var c in j.Cgroups.Where(c => !c.Contains('=', StringComparison.Ordinal)))
            {
                errors.Add($"Firecracker:Jailer:Cgroups entry \"{c}\" must look like file=value");
            }
        }
        else
        {
            // Ids without the jailer would be silently ignored: say so instead.
            foreach (var (key, id) in new[] { ("Firecracker:Jailer:Uid", j.Uid), ("Firecracker:Jailer:Gid", j.Gid) })
            {
                if (id >= 0)
                {
                    errors.Add($"{key} only applies with Firecracker:Jailer:BinaryPath (the jailer is off)");
                }
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

public static class FirecrackerServiceCollectionExtensions
{
    /// <summary>Registers the driver; its options bind from the "Firecracker" section, then <paramref name="configure"/>, validated at start.</summary>
    public static IServiceCollection AddFirecrackerDriver(this IServiceCollection services, Action<FirecrackerOptions>? configure = null) =>
        services.AddVmmDriver<FirecrackerDriver, FirecrackerOptions, FirecrackerOptionsValidator>(FirecrackerDriver.ProviderName, configure, sp => new FirecrackerDriver(
            sp.GetRequiredService<IOptions<FirecrackerOptions>>(), sp.GetRequiredService<TimeProvider>(), sp.LoggerFor<FirecrackerDriver>(), sp.GetService<HostAccess.HostPathPolicy>()));
}

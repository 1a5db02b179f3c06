using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Firecracker;

/// <summary>Firecracker driver settings (configuration section "Firecracker").</summary>
public sealed class FirecrackerOptions
{
    public const string Section = "Firecracker";

    /// <summary>The firecracker executable: a path, or a bare name looked up on PATH. Default "firecracker".</summary>
    public string BinaryPath { get; set; } = "firecracker";

    /// <summary>Per-VM directories (api.sock, vm.json, vmm.pid, console.log) live in RuntimeDirectory/&lt;uid&gt;/.</summary>
    public string RuntimeDirectory { get; set; } = "/var/lib/hypercore/run/firecracker";

    /// <summary>Kernel command line when the spec has none. reboot=k makes Ctrl-Alt-Del end the VMM (graceful stop).</summary>
    public string DefaultBootArgs { get; set; } = "console=ttyS0 reboot=k panic=1 pci=off";

    /// <summary>Report the provider unavailable when /dev/kvm is missing. Default true.</summary>
    public bool RequireKvm { get; set; } = true;

    /// <summary>The KVM device <see cref="RequireKvm"/> looks for. Default /dev/kvm.</summary>
    public string KvmDevicePath { get; set; } = Hypercore.Drivers.Vmm.KvmDevice.DefaultPath;

    /// <summary>MMDS version for PUT /mmds/config ("V1" or "V2"). Default "V2".</summary>
    public string MmdsVersion { get; set; } = "V2";

    /// <summary>Time from launching the process until its API socket answers. Default 10 s.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Timeout of one API request. Default 5 s.</summary>
    public TimeSpan ApiTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Retries of an API request whose connect failed (never of one that reached the VMM). Default 3.</summary>
    public int ApiConnectRetries { get; set; } = 3;

    /// <summary>Run firecracker through the jailer (chroot, uid/gid drop, cgroups).</summary>
    public JailerOptions Jailer { get; set; } = new();
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
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.BinaryPath))
        {
            errors.Add("Firecracker:BinaryPath must not be empty");
        }

        if (string.IsNullOrWhiteSpace(o.RuntimeDirectory) || !Path.IsPathRooted(o.RuntimeDirectory))
        {
            errors.Add($"Firecracker:RuntimeDirectory must be an absolute path, got \"{o.RuntimeDirectory}\"");
        }

        if (string.IsNullOrWhiteSpace(o.KvmDevicePath) || !Path.IsPathFullyQualified(o.KvmDevicePath))
        {
            errors.Add($"Firecracker:KvmDevicePath must be an absolute path, got \"{o.KvmDevicePath}\"");
        }

        if (o.MmdsVersion is not ("V1" or "V2"))
        {
            errors.Add($"Firecracker:MmdsVersion must be V1 or V2, got \"{o.MmdsVersion}\"");
        }

        if (o.StartTimeout <= TimeSpan.Zero || o.ApiTimeout <= TimeSpan.Zero)
        {
            errors.Add("Firecracker:StartTimeout and Firecracker:ApiTimeout must be positive");
        }

        if (o.ApiConnectRetries is < 0 or > 20)
        {
            errors.Add($"Firecracker:ApiConnectRetries must be between 0 and 20, got {o.ApiConnectRetries}");
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

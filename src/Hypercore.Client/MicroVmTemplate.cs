using Hypercore.Contracts.VmApi;

namespace Hypercore.Client;

/// <summary>
/// The few settings most VMs need (what a hac.toml holds), turned into a full <see cref="MicroVMSpec"/> by
/// <see cref="ToSpec"/>. Use a <see cref="MicroVMSpec"/> directly for volumes on host paths, static addresses
/// and the rest.
/// </summary>
public sealed record MicroVmTemplate
{
    public const string DefaultNamespace = "default";
    public const string DefaultImage = "default";
    public const int DefaultMemoryInMb = 128;
    public const int DefaultVcpu = 1;

    /// <summary>The VM's id (unique within its namespace).</summary>
    public required string Name { get; init; }

    public string Namespace { get; init; } = DefaultNamespace;

    /// <summary>
    /// An image name in the node's image directory (the daemon finds <c>images/&lt;name&gt;/vmlinuz</c> and its
    /// initrd) or an absolute kernel path on the node. Sent as <c>kernel.image</c>.
    /// </summary>
    public string Image { get; init; } = DefaultImage;

    public int MemoryInMb { get; init; } = DefaultMemoryInMb;

    public int Vcpu { get; init; } = DefaultVcpu;

    /// <summary>Size of a scratch disk the node creates for the VM, in MiB; 0 for none.</summary>
    public int DiskInMb { get; init; }

    /// <summary>Number of tap interfaces (eth0, eth1, …); 0 for none.</summary>
    public int NetworkInterfaces { get; init; }

    /// <summary>Hypervisor provider ("qemu", "firecracker", …); null for the node's default.</summary>
    public string? Provider { get; init; }

    /// <summary>One of <see cref="RestartPolicies"/>; null for the daemon's default (Always).</summary>
    public string? RestartPolicy { get; init; }

    /// <summary>Initrd path on the node; null to let the daemon use the image's own initrd, if any.</summary>
    public string? Initrd { get; init; }

    /// <summary>Kernel command line as key/value pairs; an empty value is a bare flag.</summary>
    public IReadOnlyDictionary<string, string> Cmdline { get; init; } = new Dictionary<string, string>();

    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    // Guest health (issue 14).

    /// <summary>Decides the GuestReady condition (e.g. a console line); null for none.</summary>
    public Probe? ReadinessProbe { get; init; }

    /// <summary>Restarts the VM by its restart policy after FailureThreshold failures; null for none.</summary>
    public Probe? LivenessProbe { get; init; }

    /// <summary>Holds off readiness and liveness until it succeeds; ends the VM after FailureThreshold failures; null for none.</summary>
    public Probe? StartupProbe { get; init; }

    /// <summary>Volume id of the scratch disk made from <see cref="DiskInMb"/>.</summary>
    public const string ScratchDiskId = "disk0";

    public MicroVMSpec ToSpec()
    {
        var spec = new MicroVMSpec
        {
            Id = Name,
            Namespace = Namespace,
            Vcpu = Vcpu,
            MemoryInMb = MemoryInMb,
            Kernel = new Kernel { Image = Image },
        };
        foreach (var (key, value) in Cmdline)
        {
            spec.Kernel.Cmdline[key] = value;
        }

        foreach (var (key, value) in Metadata)
        {
            spec.Metadata[key] = value;
        }

        foreach (var (key, value) in Labels)
        {
            spec.Labels[key] = value;
        }
        if (Provider is { Length: > 0 })
        {
            spec.Provider = Provider;
        }

        if (RestartPolicy is { Length: > 0 })
        {
            spec.RestartPolicy = RestartPolicy;
        }

        if (Initrd is { Length: > 0 })
        {
            spec.Initrd = new Initrd { Image = Initrd };
        }

        if (DiskInMb > 0)
        {
            // No source: the node makes (and later removes) a sparse file of this size for the VM.
            spec.AdditionalVolumes.Add(new Volume { Id = ScratchDiskId, SizeInMb = DiskInMb, Source = new VolumeSource() });
        }

        if (ReadinessProbe is not null)
        {
            spec.ReadinessProbe = ReadinessProbe.Clone();
        }

        if (LivenessProbe is not null)
        {
            spec.LivenessProbe = LivenessProbe.Clone();
        }

        if (StartupProbe is not null)
        {
            spec.StartupProbe = StartupProbe.Clone();
        }

        for (var i = 0; i < NetworkInterfaces; i++)
        {
            spec.Interfaces.Add(new NetworkInterface { DeviceId = $"eth{i}", Type = NetworkInterface.Types.IfaceType.Tap });
        }

        return spec;
    }
}

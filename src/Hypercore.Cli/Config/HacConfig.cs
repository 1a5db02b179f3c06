using Hypercore.Client;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Config;

/// <summary>
/// One VM as described by a hac.toml. Every value is optional here; what a file leaves out comes from flags
/// or from the defaults in <see cref="MicroVmTemplate"/>.
/// </summary>
internal sealed record HacConfig
{
    public string? Name { get; init; }

    public string? Namespace { get; init; }

    public string? Image { get; init; }

    public int? Memory { get; init; }

    public int? Cpu { get; init; }

    public int? Disk { get; init; }

    public int? Network { get; init; }

    public string? Provider { get; init; }

    public string? RestartPolicy { get; init; }

    public string? Initrd { get; init; }

    public IReadOnlyDictionary<string, string> Cmdline { get; init; } = new Dictionary<string, string>();

    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    // Guest health (issue 14): [readiness] and [liveness] tables.
    public Probe? Readiness { get; init; }

    public Probe? Liveness { get; init; }

    public Probe? Startup { get; init; }

    /// <summary>Fills a template; a name must come from the file or a flag.</summary>
    public MicroVmTemplate ToTemplate() => new()
    {
        Name = Name ?? "",
        Namespace = Namespace ?? MicroVmTemplate.DefaultNamespace,
        Image = Image ?? MicroVmTemplate.DefaultImage,
        MemoryInMb = Memory ?? MicroVmTemplate.DefaultMemoryInMb,
        Vcpu = Cpu ?? MicroVmTemplate.DefaultVcpu,
        DiskInMb = Disk ?? 0,
        NetworkInterfaces = Network ?? 0,
        Provider = Provider,
        RestartPolicy = RestartPolicy,
        Initrd = Initrd,
        Cmdline = Cmdline,
        Metadata = Metadata,
        Labels = Labels,
        ReadinessProbe = Readiness,
        LivenessProbe = Liveness,
        StartupProbe = Startup,
    };
}

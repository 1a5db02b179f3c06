namespace Hypercore.MicroVms;

/// <summary>Desired state of one microVM. Field names follow flintlock's MicroVMSpec.</summary>
public sealed record MicroVmSpec
{
    public const string DefaultNamespace = "default";

    public required string Id { get; init; }

    public string Namespace { get; init; } = DefaultNamespace;

    public IReadOnlyDictionary<string, string> Labels { get => _labels; init => _labels = Compact.Map(value); }

    private readonly IReadOnlyDictionary<string, string> _labels = Compact.EmptyMap;

    public int Vcpu { get; init; } = 1;

    public int MemoryInMb { get; init; } = 128;

    /// <remarks>An equal kernel a recent spec holds is kept instead of the one given (issue 15, gc10: <see cref="Compact.Kernel"/>).</remarks>
    public required KernelSpec Kernel { get => _kernel; init => _kernel = Compact.Kernel(value); }

    private readonly KernelSpec _kernel = null!;

    public InitrdSpec? Initrd { get; init; }

    public VolumeSpec? RootVolume { get; init; }

    public IReadOnlyList<VolumeSpec> AdditionalVolumes { get => _additionalVolumes; init => _additionalVolumes = Compact.List(value); }

    private readonly IReadOnlyList<VolumeSpec> _additionalVolumes = [];

    public IReadOnlyList<NetworkInterfaceSpec> Interfaces { get => _interfaces; init => _interfaces = Compact.List(value); }

    private readonly IReadOnlyList<NetworkInterfaceSpec> _interfaces = [];

    /// <summary>Guest metadata (flintlock: served through the metadata service where the provider has one).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get => _metadata; init => _metadata = Compact.Map(value); }

    private readonly IReadOnlyDictionary<string, string> _metadata = Compact.EmptyMap;

    /// <summary>Driver name, e.g. "qemu", "firecracker", "cloud-hypervisor". Empty means the node default.</summary>
    public string Provider { get; init; } = "";

    public DesiredState State { get; init; } = DesiredState.Running;

    public RestartPolicy RestartPolicy { get; init; } = RestartPolicy.Always;

    /// <summary>The node that runs this VM; empty means "whichever daemon owns the store" (standalone).</summary>
    public string NodeName { get; init; } = "";

    // Guest health (issue 14): probes run by the node's prober once the VM is Running.

    /// <summary>Decides the GuestReady condition; null: no GuestReady condition is kept.</summary>
    public ProbeSpec? ReadinessProbe { get; init; }

    /// <summary>After FailureThreshold failures the VM is ended and its restart policy applies.</summary>
    public ProbeSpec? LivenessProbe { get; init; }

    // snapshots: start from a snapshot instead of booting (docs/snapshots.md)

    /// <summary>Name of a snapshot (same namespace) this VM starts from; its hardware comes from the snapshot.</summary>
    public string? RestoreFrom { get; init; }

    // Guest health (issue 14): the startup probe.

    /// <summary>Until it succeeds on a boot, readiness and liveness probes are not run; after FailureThreshold failures the VM is ended.</summary>
    public ProbeSpec? StartupProbe { get; init; }

    // Kubernetes (issue 13): placement by kube-scheduler for a MicroVM created without a node (Kubernetes store only).

    /// <summary>Scheduling constraints of the reservation pod; null: none (and, through the API, placed on the receiving node).</summary>
    public PlacementSpec? Placement { get; init; }

    /// <summary>Value equality over the collections too, so "did the spec change" is a plain comparison.</summary>
    public bool Equals(MicroVmSpec? other) =>
        other is not null &&
        Id == other.Id && Namespace == other.Namespace && Vcpu == other.Vcpu && MemoryInMb == other.MemoryInMb &&
        Provider == other.Provider && State == other.State && RestartPolicy == other.RestartPolicy &&
        NodeName == other.NodeName && Kernel == other.Kernel && Initrd == other.Initrd && RootVolume == other.RootVolume &&
        DictEquals(Labels, other.Labels) && DictEquals(Metadata, other.Metadata) &&
        AdditionalVolumes.SequenceEqual(other.AdditionalVolumes) && Interfaces.SequenceEqual(other.Interfaces) &&
        ReadinessProbe == other.ReadinessProbe && LivenessProbe == other.LivenessProbe &&
        RestoreFrom == other.RestoreFrom &&
        StartupProbe == other.StartupProbe && Placement == other.Placement;

    public override int GetHashCode() => HashCode.Combine(Id, Namespace, Vcpu, MemoryInMb, Provider, State);

    /// <remarks>Allocates nothing for the same map or an empty one (issue 15, gc10: every spec's kernel is compared with
    /// the recent ones, <see cref="Compact.Kernel"/>; the LINQ form made a closure and an enumerator per call).</remarks>
    internal static bool DictEquals(IReadOnlyDictionary<string, string> a, IReadOnlyDictionary<string, string> b)
    {
        if (ReferenceEquals(a, b))
        {
            return true;
        }

        if (a.Count != b.Count)
        {
            return false;
        }

        if (a.Count == 0)
        {
            return true;
        }

        foreach (var (key, value) in a)
        {
            if (!b.TryGetValue(key, out var other) || other != value)
            {
                return false;
            }
        }

        return true;
    }
}

public sealed record KernelSpec
{
    /// <summary>Path of the kernel image on the node, an image folder name, or an OCI image reference (images).</summary>
    public required string Image { get; init; }

    /// <summary>Kernel command line as key/value pairs; an empty value means a bare flag.</summary>
    public IReadOnlyDictionary<string, string> Cmdline { get => _cmdline; init => _cmdline = Compact.Map(value); }

    private readonly IReadOnlyDictionary<string, string> _cmdline = Compact.EmptyMap; // issue 15: one shared empty map, not one per kernel

    public string? Filename { get; init; }

    public bool AddNetworkConfig { get; init; }

    public bool Equals(KernelSpec? other) =>
        other is not null && Image == other.Image && Filename == other.Filename &&
        AddNetworkConfig == other.AddNetworkConfig && MicroVmSpec.DictEquals(Cmdline, other.Cmdline);

    public override int GetHashCode() => HashCode.Combine(Image, Filename, AddNetworkConfig);

    /// <summary>Renders the map as a kernel command line, in a stable order.</summary>
    public string RenderCmdline() =>
        string.Join(' ', Cmdline.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => kv.Value.Length == 0 ? kv.Key : $"{kv.Key}={kv.Value}"));
}

public sealed record InitrdSpec
{
    public required string Image { get; init; }

    public string? Filename { get; init; }
}

/// <summary>A block device: a host path, a scratch disk of SizeInMb, or (images) a disk built from an OCI image.</summary>
public sealed record VolumeSpec
{
    public required string Id { get; init; }

    public bool IsReadOnly { get; init; }

    /// <summary>File or block device on the node. Empty with <see cref="SizeInMb"/> set: a scratch disk the driver makes.</summary>
    public string HostPath { get; init; } = "";

    public string? MountPoint { get; init; }

    public int? SizeInMb { get; init; }

    /// <summary>
    /// flintlock's partition_id: the PARTUUID of the root partition on a partitioned root disk (the guest mounts
    /// root=PARTUUID=&lt;id&gt;). Only meaningful on the root volume.
    /// </summary>
    public string? PartitionId { get; init; }

    // Images (issue 11): flintlock's source.container_source.
    /// <summary>
    /// An OCI image reference whose layers become this volume's ext4 disk (the images start step pulls it and gives
    /// the driver a copy-on-write view of the cached disk; read-only volumes share it). Null: host_path or scratch.
    /// </summary>
    public string? ContainerSource { get; init; }
}

public enum InterfaceType
{
    Tap,
    Macvtap,
}

public sealed record NetworkInterfaceSpec
{
    public required string DeviceId { get; init; }

    public InterfaceType Type { get; init; } = InterfaceType.Tap;

    public string? GuestMac { get; init; }

    /// <summary>Host bridge to attach the tap to, if any.</summary>
    public string? Bridge { get; init; }

    /// <summary>Static guest address in CIDR form, e.g. 10.0.0.2/24 (used when kernel.add_network_config).</summary>
    public string? Address { get; init; }

    public string? Gateway { get; init; }

    /// <summary>DNS servers for the static address (IPv4, at most two: the kernel's ip= argument has dns0 and dns1).</summary>
    public IReadOnlyList<string> Nameservers { get => _nameservers; init => _nameservers = Compact.List(value); }

    private readonly IReadOnlyList<string> _nameservers = [];

    // Node networking (issue 12): port forwards and the macvtap parent.

    /// <summary>Host ports forwarded to this interface's guest address (managed bridge only).</summary>
    public IReadOnlyList<PortForward> Ports { get => _ports; init => _ports = Compact.List(value); }

    private readonly IReadOnlyList<PortForward> _ports = [];

    /// <summary>Host interface a macvtap is made on; empty: the node's first allowed parent.</summary>
    public string? Parent { get; init; }

    /// <summary>Value equality over <see cref="Nameservers"/> too, so "did the spec change" is a plain comparison.</summary>
    public bool Equals(NetworkInterfaceSpec? other) =>
        other is not null && DeviceId == other.DeviceId && Type == other.Type && GuestMac == other.GuestMac &&
        Bridge == other.Bridge && Address == other.Address && Gateway == other.Gateway &&
        Nameservers.SequenceEqual(other.Nameservers) &&
        Ports.SequenceEqual(other.Ports) && Parent == other.Parent;

    public override int GetHashCode() => HashCode.Combine(DeviceId, Type, GuestMac, Bridge, Address, Gateway);
}

/// <summary>A host port forwarded to a port of the interface's guest address (node networking, issue 12).</summary>
public sealed record PortForward(int HostPort, int GuestPort, string Protocol = "tcp");

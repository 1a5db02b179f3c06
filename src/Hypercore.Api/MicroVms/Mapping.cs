using Google.Protobuf.WellKnownTypes;
using Hypercore.Images;
using Hypercore.Images.References;
using Hypercore.MicroVms;
using Proto = Hypercore.Contracts.VmApi;

namespace Hypercore.Api.MicroVms;

/// <summary>
/// The one place that translates between the wire messages (flintlock.types, used by both vm.services.api and
/// microvm.services.api.v1alpha1) and the core records. Reading a
/// request collects every shape problem (unknown enum strings, unsupported sources) instead of stopping at the
/// first, so a client sees all it has to fix at once.
/// </summary>
public static class Mapping
{
    /// <summary>Watch event type names on the wire.</summary>
    public const string Added = "ADDED";
    public const string Modified = "MODIFIED";
    public const string Deleted = "DELETED";

    /// <summary>
    /// Reads a requested spec. Server-owned fields (uid, generation, timestamps) are ignored: the store assigns
    /// them. Problems go to <paramref name="errors"/>; the result is only meaningful when none were added.
    /// </summary>
    public static MicroVmSpec ToCore(Proto.MicroVMSpec spec, ICollection<string> errors)
    {
        var kernel = spec.Kernel ?? new Proto.Kernel();
        CheckImageReference(kernel.Image, "kernel.image", errors);
        if (spec.Initrd is { } requestedInitrd)
        {
            CheckImageReference(requestedInitrd.Image, "initrd.image", errors);
        }

        if (spec.AllowGuestAgent)
        {
            errors.Add("allow_guest_agent is not supported on this node (there is no guest agent); leave it false");
        }

        return new MicroVmSpec
        {
            Id = spec.Id,
            Namespace = SharedSpecStrings.Share(spec.Namespace),
            Labels = Copy(spec.Labels),
            Vcpu = spec.Vcpu,
            MemoryInMb = spec.MemoryInMb,
            Kernel = new KernelSpec
            {
                Image = SharedSpecStrings.Share(kernel.Image),
                Cmdline = Copy(kernel.Cmdline),
                Filename = kernel.HasFilename ? SharedSpecStrings.Share(kernel.Filename) : null,
                AddNetworkConfig = kernel.AddNetworkConfig,
            },
            Initrd = spec.Initrd is null ? null : new InitrdSpec
            {
                Image = SharedSpecStrings.Share(spec.Initrd.Image),
                Filename = spec.Initrd.HasFilename ? SharedSpecStrings.Share(spec.Initrd.Filename) : null,
            },
            RootVolume = spec.RootVolume is null ? null : ToCore(spec.RootVolume, "root_volume", errors),
            // Arrays: a List here made the conditional a List and its [] a new empty List per Create (issue 15, survive7).
            AdditionalVolumes = spec.AdditionalVolumes.Count == 0 ? [] : ToCore(spec.AdditionalVolumes, errors),
            Interfaces = spec.Interfaces.Count == 0 ? [] : ToCore(spec.Interfaces, errors),
            Metadata = Copy(spec.Metadata),
            Provider = spec.HasProvider ? SharedSpecStrings.Share(spec.Provider) : "",
            State = ParseEnum(spec.State, DesiredState.Running, "state", errors),
            RestartPolicy = ParseEnum(spec.RestartPolicy, RestartPolicy.Always, "restart_policy", errors),
            NodeName = SharedSpecStrings.Share(spec.NodeName),
            ReadinessProbe = spec.ReadinessProbe is { } readiness ? ToCore(readiness) : null,
            LivenessProbe = spec.LivenessProbe is { } liveness ? ToCore(liveness) : null,

            // snapshots
            RestoreFrom = spec.HasRestoreFrom && spec.RestoreFrom.Length > 0 ? spec.RestoreFrom : null,

            // guest health: startup probe
            StartupProbe = spec.StartupProbe is { } startup ? ToCore(startup) : null,
            // Kubernetes (issue 13)
            Placement = spec.Placement is { } placement ? ToCore(placement) : null,
        };
    }

    // Issue 15 (alloc7): the lists' lambdas live here, not in ToCore(MicroVMSpec), where capturing `errors` made a
    // closure object on every Create, lists or not.
    private static VolumeSpec[] ToCore(Google.Protobuf.Collections.RepeatedField<Proto.Volume> volumes, ICollection<string> errors) =>
        volumes.Select((v, i) => ToCore(v, $"additional_volumes[{i}]", errors)).ToArray();

    private static NetworkInterfaceSpec[] ToCore(Google.Protobuf.Collections.RepeatedField<Proto.NetworkInterface> interfaces, ICollection<string> errors) =>
        interfaces.Select((n, i) => ToCore(n, i, errors)).ToArray();

    /// <summary>
    /// A request's map as the spec keeps it. Empty (nearly always for labels, metadata and the kernel command line) is one
    /// shared read-only instance (issue 15 goal 2): the informer keeps every spec for the VM's life, and three empty
    /// dictionaries per VM were ~250 bytes that each Create added to what the next gen0 collection copies.
    /// </summary>
    private static IReadOnlyDictionary<string, string> Copy(IDictionary<string, string> map) =>
        map.Count == 0 ? System.Collections.ObjectModel.ReadOnlyDictionary<string, string>.Empty : new Dictionary<string, string>(map);

    /// <summary>Kubernetes (issue 13): placement fields as they are; PlacementValidator checks them.</summary>
    private static PlacementSpec ToCore(Proto.Placement p) => new()
    {
        NodeSelector = new Dictionary<string, string>(p.NodeSelector),
        Tolerations = [.. p.Tolerations.Select(t => new TolerationSpec
        {
            Key = t.Key, Operator = t.Operator, Value = t.Value, Effect = t.Effect, TolerationSeconds = t.HasTolerationSeconds ? t.TolerationSeconds : null,
        })],
        AffinityJson = p.AffinityJson.Length > 0 ? p.AffinityJson : null,
        PriorityClassName = p.PriorityClassName,
    };

    private static Proto.Placement ToProto(PlacementSpec p)
    {
        var placement = new Proto.Placement { AffinityJson = p.AffinityJson ?? "", PriorityClassName = p.PriorityClassName };
        AddAll(placement.NodeSelector, p.NodeSelector);
        placement.Tolerations.Add(p.Tolerations.Select(t =>
        {
            var toleration = new Proto.Toleration { Key = t.Key, Operator = t.Operator, Value = t.Value, Effect = t.Effect };
            if (t.TolerationSeconds is { } seconds)
            {
                toleration.TolerationSeconds = seconds;
            }

            return toleration;
        }));
        return placement;
    }

    /// <summary>
    /// MapField.Add(IDictionary) without the copy that ToDictionary() made first (issue 15: four dictionaries per
    /// Create reply, most of them empty); same entries, same order, same refusal of a duplicate key.
    /// </summary>
    private static void AddAll(Google.Protobuf.Collections.MapField<string, string> to, IReadOnlyDictionary<string, string> from)
    {
        if (from.Count == 0)
        {
            return;
        }

        foreach (var (key, value) in from)
        {
            to.Add(key, value);
        }
    }

    public static Proto.MicroVM ToProto(MicroVm vm) => new()
    {
        Version = (int)Math.Min(vm.Generation, int.MaxValue),
        Spec = ToProto(vm.Spec, vm),
        Status = ToProto(vm.Status, vm.IsDeleting, vm.Spec),
    };

    public static Proto.MicroVMSpec ToProto(MicroVmSpec spec, MicroVm? record = null)
    {
        var p = new Proto.MicroVMSpec
        {
            Id = spec.Id,
            Namespace = spec.Namespace,
            Vcpu = spec.Vcpu,
            MemoryInMb = spec.MemoryInMb,
            Kernel = new Proto.Kernel { Image = spec.Kernel.Image, AddNetworkConfig = spec.Kernel.AddNetworkConfig },
            Provider = spec.Provider,
            State = spec.State.ToString(),
            RestartPolicy = spec.RestartPolicy.ToString(),
            NodeName = spec.NodeName,
        };
        if (spec.RestoreFrom is { } restoreFrom)
        {
            p.RestoreFrom = restoreFrom; // snapshots
        }

        if (spec.Placement is { } placement)
        {
            p.Placement = ToProto(placement); // Kubernetes (issue 13)
        }

        AddAll(p.Labels, spec.Labels);
        AddAll(p.Metadata, spec.Metadata);
        AddAll(p.Kernel.Cmdline, spec.Kernel.Cmdline);
        if (spec.Kernel.Filename is { } kf)
        {
            p.Kernel.Filename = kf;
        }

        if (spec.Initrd is { } initrd)
        {
            p.Initrd = new Proto.Initrd { Image = initrd.Image };
            if (initrd.Filename is { } f)
            {
                p.Initrd.Filename = f;
            }
        }

        if (spec.RootVolume is { } root)
        {
            p.RootVolume = ToProto(root);
        }

        // issue 15 (handler6): no LINQ iterator per reply for the lists that are nearly always empty.
        for (var i = 0; i < spec.AdditionalVolumes.Count; i++)
        {
            p.AdditionalVolumes.Add(ToProto(spec.AdditionalVolumes[i]));
        }

        for (var i = 0; i < spec.Interfaces.Count; i++)
        {
            p.Interfaces.Add(ToProto(spec.Interfaces[i]));
        }

        if (spec.ReadinessProbe is { } readiness)
        {
            p.ReadinessProbe = ToProto(readiness);
        }

        if (spec.LivenessProbe is { } liveness)
        {
            p.LivenessProbe = ToProto(liveness);
        }

        if (spec.StartupProbe is { } startup)
        {
            p.StartupProbe = ToProto(startup);
        }

        if (record is not null)
        {
            p.Uid = record.Uid;
            p.Generation = record.Generation;
            p.CreatedAt = Timestamp.FromDateTimeOffset(record.CreatedAt);
            if (record.DeletionRequestedAt is { } deleted)
            {
                p.DeletedAt = Timestamp.FromDateTimeOffset(deleted);
            }
        }

        return p;
    }

    public static Proto.MicroVMStatus ToProto(MicroVmStatus status, bool deleting) => ToProto(status, deleting, null);

    /// <summary>
    /// Hypercore's status at 100+ and flintlock's fields 1-7 derived from it: state from the phase, and the mounts
    /// and interfaces from the spec (<paramref name="spec"/>), which is what the driver was given to prepare.
    /// </summary>
    public static Proto.MicroVMStatus ToProto(MicroVmStatus status, bool deleting, MicroVmSpec? spec)
    {
        var p = new Proto.MicroVMStatus
        {
            State = State(status.Phase, deleting),
            Retry = status.RestartCount,
            Phase = status.Phase.ToString(),
            ObservedGeneration = status.ObservedGeneration,
            Pid = status.Pid ?? 0,
            Node = status.Node ?? "",
            ConsoleLogPath = status.ConsoleLogPath ?? "",
            RestartCount = status.RestartCount,
            Runtime = status.Runtime ?? "",
            Deleting = deleting,
        };
        if (status.BootTime is { } boot)
        {
            p.BootTime = Timestamp.FromDateTimeOffset(boot);
        }

        if (spec is not null)
        {
            p.KernelMount = HostPathMount(spec.Kernel.Image);
            if (spec.Initrd is { } initrd)
            {
                p.InitrdMount = HostPathMount(initrd.Image);
            }

            // A scratch disk (no host_path) is a file the driver makes in its own directory, and tap names are the
            // driver's too: the API does not know them, so they are left out rather than guessed.
            if (spec.RootVolume is { HostPath.Length: > 0 } root)
            {
                p.Volumes[root.Id] = new Proto.VolumeStatus { Mount = HostPathMount(root.HostPath) };
            }

            for (var i = 0; i < spec.AdditionalVolumes.Count; i++)
            {
                if (spec.AdditionalVolumes[i] is { HostPath.Length: > 0 } v)
                {
                    p.Volumes[v.Id] = new Proto.VolumeStatus { Mount = HostPathMount(v.HostPath) };
                }
            }

            for (var i = 0; i < spec.Interfaces.Count; i++)
            {
                var nic = spec.Interfaces[i];
                p.NetworkInterfaces[nic.DeviceId] = new Proto.NetworkInterfaceStatus { Index = i, MacAddress = nic.GuestMac ?? "" };
            }
        }

        // Node networking (issue 12): what the network start step prepared (host device, MAC, guest address).
        foreach (var nic in status.Interfaces)
        {
            var entry = p.NetworkInterfaces.TryGetValue(nic.DeviceId, out var known) ? known : new Proto.NetworkInterfaceStatus();
            entry.HostDeviceName = nic.HostDevice;
            entry.MacAddress = nic.Mac;
            entry.GuestAddress = nic.GuestAddress ?? "";
            entry.Bridge = nic.Bridge ?? "";
            p.NetworkInterfaces[nic.DeviceId] = entry;
        }

        if (status.PortForwards.Count > 0)
        {
            p.PortForwards.Add(status.PortForwards);
        }

        if (status.GuestReadyTime is { } ready)
        {
            p.GuestReadyTime = Timestamp.FromDateTimeOffset(ready);
        }

        if (status.GuestReadySeconds is { } readySeconds)
        {
            p.GuestReadySeconds = readySeconds;
        }

        // Images (issue 11).
        var images = status.Images;
        for (var n = 0; n < images.Count; n++)
        {
            var i = images[n];
            p.Images.Add(new Proto.ImagePullStatus
            {
                Reference = i.Reference, State = i.State, Digest = i.Digest ?? "", BytesDone = i.BytesDone, BytesTotal = i.BytesTotal, Message = i.Message ?? "",
            });
        }

        // snapshots (issue 14)
        p.RestoredFrom = status.RestoredFrom ?? "";
        p.LastSnapshot = status.LastSnapshot ?? "";
        if (status.LastSnapshotTime is { } snapshotTime)
        {
            p.LastSnapshotTime = Timestamp.FromDateTimeOffset(snapshotTime);
        }

        // Kubernetes (issue 13): placement's verdict and a lost node, from their conditions.
        if (status.FindCondition("Scheduled") is { Status: ConditionStatus.True } && spec is { NodeName.Length: > 0 })
        {
            p.ScheduledNode = spec.NodeName;
        }

        p.NodeLost = status.FindCondition("NodeLost") is { Status: ConditionStatus.True };
        if (status.Addresses.Count > 0)
        {
            p.Addresses.Add(status.Addresses);
        }

        for (var i = 0; i < status.Conditions.Count; i++)
        {
            var c = status.Conditions[i];
            p.Conditions.Add(new Proto.Condition
            {
                Type = c.Type,
                Status = c.Status.ToString(),
                Reason = c.Reason,
                Message = c.Message,
                LastTransitionTime = Timestamp.FromDateTimeOffset(c.LastTransitionTime),
                ObservedGeneration = c.ObservedGeneration,
            });
        }

        return p;
    }

    /// <summary>flintlock's state for a phase: CREATED means "the VM exists and is as asked", which CAPMVM reads as ready.</summary>
    public static Proto.MicroVMStatus.Types.MicroVMState State(Phase phase, bool deleting) => deleting || phase == Phase.Deleting
        ? Proto.MicroVMStatus.Types.MicroVMState.Deleting
        : phase switch
        {
            Phase.Running or Phase.Paused or Phase.Stopped => Proto.MicroVMStatus.Types.MicroVMState.Created,
            Phase.Failed or Phase.CrashLoopBackOff => Proto.MicroVMStatus.Types.MicroVMState.Failed,
            _ => Proto.MicroVMStatus.Types.MicroVMState.Pending, // Pending, Provisioning, Stopping
        };

    private static Proto.Mount HostPathMount(string path) => new()
    {
        Type = path.StartsWith("/dev/", StringComparison.Ordinal) ? Proto.Mount.Types.MountType.Dev : Proto.Mount.Types.MountType.Hostpath,
        Source = path,
    };

    /// <summary>
    /// Images (issue 11): an OCI reference is pulled by the node before the VM starts; one that looks like a
    /// reference (its first part is a registry host) but does not parse is refused here, naming what is wrong.
    /// </summary>
    private static void CheckImageReference(string image, string field, ICollection<string> errors)
    {
        if (ImageSources.IsReference(image) && OperatingSystem.IsLinux() && !ImageReference.TryParse(image, out _, out var error))
        {
            errors.Add($"{field}: {error}");
        }
    }

    private static VolumeSpec ToCore(Proto.Volume v, string field, ICollection<string> errors)
    {
        var source = v.Source ?? new Proto.VolumeSource();
        if (source.HasContainerSource)
        {
            CheckImageReference(source.ContainerSource, $"{field} \"{v.Id}\" source.container_source", errors);
        }

        if (source.HasVirtiofsSource)
        {
            errors.Add($"{field} \"{v.Id}\": source.virtiofs_source is not supported on this node; use source.host_path");
        }

        return new VolumeSpec
        {
            Id = v.Id,
            IsReadOnly = v.IsReadOnly,
            HostPath = source.HasHostPath ? source.HostPath : "",
            MountPoint = v.HasMountPoint ? v.MountPoint : null,
            SizeInMb = v.HasSizeInMb ? v.SizeInMb : null,
            PartitionId = v.HasPartitionId ? v.PartitionId : null,
            ContainerSource = source.HasContainerSource ? source.ContainerSource : null, // images (issue 11)
        };
    }

    private static Proto.Volume ToProto(VolumeSpec v)
    {
        var p = new Proto.Volume { Id = v.Id, IsReadOnly = v.IsReadOnly, Source = new Proto.VolumeSource() };
        if (v.HostPath.Length > 0)
        {
            p.Source.HostPath = v.HostPath; // empty: a scratch disk the driver makes (size_in_mb)
        }

        if (v.MountPoint is { } mp)
        {
            p.MountPoint = mp;
        }

        if (v.SizeInMb is { } size)
        {
            p.SizeInMb = size;
        }

        if (v.PartitionId is { } partition)
        {
            p.PartitionId = partition;
        }

        if (v.ContainerSource is { } containerSource)
        {
            p.Source.ContainerSource = containerSource; // images (issue 11)
        }

        return p;
    }

    private static NetworkInterfaceSpec ToCore(Proto.NetworkInterface n, int index, ICollection<string> errors)
    {
        if (n.Address is { } a && a.Address.Length == 0)
        {
            errors.Add($"interfaces[{index}] \"{n.DeviceId}\": address.address is required when address is given (CIDR, e.g. 10.0.0.2/24)");
        }

        var overridden = n.Overrides is { HasBridgeName: true } o ? o.BridgeName : null;
        if (overridden is not null && n.HasBridge && n.Bridge != overridden)
        {
            errors.Add($"interfaces[{index}] \"{n.DeviceId}\": bridge \"{n.Bridge}\" and overrides.bridge_name \"{overridden}\" differ; give one");
        }

        return new NetworkInterfaceSpec
        {
            DeviceId = n.DeviceId,
            Type = n.Type == Proto.NetworkInterface.Types.IfaceType.Tap ? InterfaceType.Tap : InterfaceType.Macvtap,
            GuestMac = n.HasGuestMac ? n.GuestMac : null,
            Bridge = n.HasBridge ? n.Bridge : overridden,
            Address = n.Address is { Address.Length: > 0 } addr ? addr.Address : null,
            Gateway = n.Address is { HasGateway: true } gw ? gw.Gateway : null,
            Nameservers = n.Address is { } withDns ? [.. withDns.Nameservers] : [],
            Ports = [.. n.Ports.Select(p => ToCore(p, index, n.DeviceId, errors))],
            Parent = n.HasMacvtapParent ? n.MacvtapParent : null,
        };
    }

    // Node networking (issue 12): interfaces[].ports.
    private static PortForward ToCore(Proto.PortMapping p, int index, string deviceId, ICollection<string> errors)
    {
        var protocol = p.Protocol.Length == 0 ? "tcp" : p.Protocol.ToLowerInvariant();
        if (protocol is not ("tcp" or "udp"))
        {
            errors.Add($"interfaces[{index}] \"{deviceId}\": ports protocol \"{p.Protocol}\" must be tcp or udp");
        }

        foreach (var (name, value) in new[] { ("host_port", p.HostPort), ("guest_port", p.GuestPort) })
        {
            if (value is < 1 or > 65535)
            {
                errors.Add($"interfaces[{index}] \"{deviceId}\": ports {name} {value} must be between 1 and 65535");
            }
        }

        return new PortForward((int)Math.Min(p.HostPort, int.MaxValue), (int)Math.Min(p.GuestPort, int.MaxValue), protocol);
    }

    private static Proto.NetworkInterface ToProto(NetworkInterfaceSpec n)
    {
        var p = new Proto.NetworkInterface
        {
            DeviceId = n.DeviceId,
            Type = n.Type == InterfaceType.Tap ? Proto.NetworkInterface.Types.IfaceType.Tap : Proto.NetworkInterface.Types.IfaceType.Macvtap,
        };
        if (n.GuestMac is { } mac)
        {
            p.GuestMac = mac;
        }

        if (n.Bridge is { } bridge)
        {
            p.Bridge = bridge;
            p.Overrides = new Proto.NetworkOverrides { BridgeName = bridge };
        }

        if (n.Address is { } address)
        {
            p.Address = new Proto.StaticAddress { Address = address };
            if (n.Gateway is { } gw)
            {
                p.Address.Gateway = gw;
            }

            p.Address.Nameservers.Add(n.Nameservers);
        }

        p.Ports.Add(n.Ports.Select(f => new Proto.PortMapping { HostPort = (uint)f.HostPort, GuestPort = (uint)f.GuestPort, Protocol = f.Protocol }));
        if (n.Parent is { } parent)
        {
            p.MacvtapParent = parent;
        }

        return p;
    }

    /// <summary>Guest health (issue 14): zero timing fields take Kubernetes' defaults, as an unset field there does.</summary>
    private static ProbeSpec ToCore(Proto.Probe p) => new()
    {
        Console = p.Console is { } c ? new ConsoleProbe(c.Regex) : null,
        TcpSocket = p.TcpSocket is { } t ? new TcpSocketProbe(t.Port) : null,
        HttpGet = p.HttpGet is { } h ? new HttpGetProbe(h.Port, h.Path.Length == 0 ? "/" : h.Path) : null,
        InitialDelaySeconds = p.InitialDelaySeconds,
        PeriodSeconds = p.PeriodSeconds == 0 ? ProbeSpec.DefaultPeriodSeconds : p.PeriodSeconds,
        TimeoutSeconds = p.TimeoutSeconds == 0 ? ProbeSpec.DefaultTimeoutSeconds : p.TimeoutSeconds,
        FailureThreshold = p.FailureThreshold == 0 ? ProbeSpec.DefaultFailureThreshold : p.FailureThreshold,
    };

    private static Proto.Probe ToProto(ProbeSpec p) => new()
    {
        Console = p.Console is { } c ? new Proto.ConsoleProbe { Regex = c.Regex } : null,
        TcpSocket = p.TcpSocket is { } t ? new Proto.TcpSocketProbe { Port = t.Port } : null,
        HttpGet = p.HttpGet is { } h ? new Proto.HttpGetProbe { Port = h.Port, Path = h.Path } : null,
        InitialDelaySeconds = p.InitialDelaySeconds,
        PeriodSeconds = p.PeriodSeconds,
        TimeoutSeconds = p.TimeoutSeconds,
        FailureThreshold = p.FailureThreshold,
    };

    /// <summary>Empty means the default; otherwise one of the enum's names, case-insensitively.</summary>
    internal static TEnum ParseEnum<TEnum>(string value, TEnum fallback, string field, ICollection<string> errors)
        where TEnum : struct, System.Enum
    {
        if (value.Length == 0)
        {
            return fallback;
        }

        if (!int.TryParse(value, out _) && System.Enum.TryParse<TEnum>(value, ignoreCase: true, out var parsed) && System.Enum.IsDefined(parsed))
        {
            return parsed;
        }

        errors.Add($"{field} \"{value}\" is not one of {string.Join(", ", System.Enum.GetNames<TEnum>())}");
        return fallback;
    }

    /// <summary>Wire name of an informer event type.</summary>
    internal static string EventType(Informers.InformerEventType type) => type switch
    {
        Informers.InformerEventType.Added => Added,
        Informers.InformerEventType.Modified => Modified,
        _ => Deleted,
    };
}

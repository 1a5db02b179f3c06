using System.Globalization;
using System.Text.Json.Nodes;
using Hypercore.MicroVms;

namespace Hypercore.Store.Kubernetes;

/// <summary>
/// The MicroVM custom resource (crds/microvms.hypercore.vistara.dev.yaml) and its mapping to the domain record.
/// Objects are handled as raw JSON so that a read-modify-write (finalizers) never drops fields this version does
/// not know about.
/// </summary>
public static class MicroVmResource
{
    public const string Group = "hypercore.vistara.dev";
    public const string Version = "v1alpha1";
    public const string ApiVersion = Group + "/" + Version;
    public const string Kind = "MicroVM";
    public const string Plural = "microvms";

    /// <summary>Label naming the node whose daemon reconciles the MicroVM.</summary>
    public const string NodeLabel = Group + "/node";

    /// <summary>Kubernetes issue 13: on a MicroVM moved off a lost node, that node (its daemon removes what it has left for it).</summary>
    public const string MovedFromLabel = Group + "/moved-from";

    /// <summary>Held by the node's daemon from claim until every process and file of the VM is gone.</summary>
    public const string Finalizer = Group + "/finalizer";

    /// <summary>Timestamps keep full precision so that a status read back compares equal to the one written.</summary>
    private const string TimeFormat = "yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'";

    public static string FormatTime(DateTimeOffset time) => time.UtcDateTime.ToString(TimeFormat, CultureInfo.InvariantCulture);

    public static DateTimeOffset ParseTime(string value) =>
        DateTimeOffset.Parse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    /// <summary>The node a resource is assigned to: spec.nodeName wins over the label; empty when unassigned.</summary>
    public static string AssignedNode(JsonObject obj)
    {
        var specNode = (string?)obj["spec"]?["nodeName"];
        if (!string.IsNullOrEmpty(specNode))
        {
            return specNode;
        }

        return (string?)obj["metadata"]?["labels"]?[NodeLabel] ?? "";
    }

    /// <summary>A new resource for <paramref name="spec"/>; the node label is spec.nodeName, or this node when the spec names none.</summary>
    public static JsonObject NewResource(MicroVmSpec spec, string nodeName)
    {
        var labels = LabelsFor(spec, null);
        if (spec.NodeName.Length == 0 && nodeName.Length > 0 && spec.Placement is null) // with placement: kube-scheduler picks (issue 13)
        {
            labels[NodeLabel] = nodeName;
        }

        return new JsonObject
        {
            ["apiVersion"] = ApiVersion,
            ["kind"] = Kind,
            ["metadata"] = new JsonObject
            {
                ["name"] = spec.Id,
                ["namespace"] = spec.Namespace,
                ["labels"] = labels,
            },
            ["spec"] = SpecToJson(spec),
        };
    }

    /// <summary>User labels from the spec plus the node label already on the object (it is not part of the spec).</summary>
    public static JsonObject LabelsFor(MicroVmSpec spec, JsonObject? existing)
    {
        var labels = new JsonObject();
        foreach (var (k, v) in spec.Labels.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            labels[k] = v;
        }

        if ((string?)existing?["metadata"]?["labels"]?[NodeLabel] is { } node && !labels.ContainsKey(NodeLabel))
        {
            labels[NodeLabel] = node;
        }

        // Kubernetes issue 13: nodes list and watch by this label, so it always names the node spec.nodeName names.
        if (spec.NodeName.Length > 0)
        {
            labels[NodeLabel] = spec.NodeName;
        }

        return labels;
    }

    public static bool HasFinalizer(JsonObject obj) =>
        obj["metadata"]?["finalizers"] is JsonArray list && list.Any(f => (string?)f == Finalizer);

    public static MicroVm ToMicroVm(JsonObject obj)
    {
        var meta = obj["metadata"] as JsonObject ?? throw new FormatException("resource has no metadata");
        var name = (string?)meta["name"] ?? throw new FormatException("resource has no metadata.name");
        var ns = (string?)meta["namespace"] ?? MicroVmSpec.DefaultNamespace;
        var spec = obj["spec"] as JsonObject ?? new JsonObject();
        return new MicroVm
        {
            Uid = (string?)meta["uid"] ?? "",
            ResourceVersion = (string?)meta["resourceVersion"] ?? "",
            Generation = (long?)meta["generation"] ?? 1,
            CreatedAt = meta["creationTimestamp"] is { } created ? ParseTime((string)created!) : default,
            DeletionRequestedAt = meta["deletionTimestamp"] is { } deleting ? ParseTime((string)deleting!) : null,
            Claimed = HasFinalizer(obj),
            Spec = SpecFromJson(name, ns, meta["labels"] as JsonObject, spec),
            Status = obj["status"] is JsonObject status ? StatusFromJson(status) : MicroVmStatus.Initial,
        };
    }

    public static JsonObject SpecToJson(MicroVmSpec s)
    {
        var kernel = new JsonObject { ["image"] = s.Kernel.Image };
        if (s.Kernel.Filename is { } kf)
        {
            kernel["filename"] = kf;
        }

        if (s.Kernel.Cmdline.Count > 0)
        {
            kernel["cmdline"] = Map(s.Kernel.Cmdline);
        }

        if (s.Kernel.AddNetworkConfig)
        {
            kernel["addNetworkConfig"] = true;
        }

        var spec = new JsonObject
        {
            ["vcpu"] = s.Vcpu,
            ["memoryInMb"] = s.MemoryInMb,
            ["kernel"] = kernel,
        };
        if (s.Initrd is { } initrd)
        {
            var i = new JsonObject { ["image"] = initrd.Image };
            if (initrd.Filename is { } f)
            {
                i["filename"] = f;
            }

            spec["initrd"] = i;
        }

        if (s.RootVolume is { } root)
        {
            spec["rootVolume"] = VolumeToJson(root);
        }

        if (s.AdditionalVolumes.Count > 0)
        {
            spec["additionalVolumes"] = new JsonArray(s.AdditionalVolumes.Select(v => (JsonNode)VolumeToJson(v)).ToArray());
        }

        if (s.Interfaces.Count > 0)
        {
            spec["interfaces"] = new JsonArray(s.Interfaces.Select(n => (JsonNode)InterfaceToJson(n)).ToArray());
        }

        if (s.Metadata.Count > 0)
        {
            spec["metadata"] = Map(s.Metadata);
        }

        if (s.Provider.Length > 0)
        {
            spec["provider"] = s.Provider;
        }

        spec["state"] = s.State.ToString();
        spec["restartPolicy"] = s.RestartPolicy.ToString();
        if (s.NodeName.Length > 0)
        {
            spec["nodeName"] = s.NodeName;
        }

        // Guest health (issue 14).
        if (s.ReadinessProbe is { } readiness)
        {
            spec["readinessProbe"] = ProbeToJson(readiness);
        }

        if (s.LivenessProbe is { } liveness)
        {
            spec["livenessProbe"] = ProbeToJson(liveness);
        }

        if (s.StartupProbe is { } startup)
        {
            spec["startupProbe"] = ProbeToJson(startup);
        }

        // snapshots
        if (s.RestoreFrom is { } restoreFrom)
        {
            spec["restoreFrom"] = restoreFrom;
        }

        // Kubernetes (issue 13)
        if (s.Placement is { } placement)
        {
            spec["placement"] = PlacementToJson(placement);
        }

        return spec;
    }

    /// <summary>Guest health: a probe in the CRD's camelCase shape (Kubernetes' own probe field names).</summary>
    private static JsonObject ProbeToJson(ProbeSpec p)
    {
        var o = new JsonObject
        {
            ["initialDelaySeconds"] = p.InitialDelaySeconds,
            ["periodSeconds"] = p.PeriodSeconds,
            ["timeoutSeconds"] = p.TimeoutSeconds,
            ["failureThreshold"] = p.FailureThreshold,
        };
        if (p.Console is { } c)
        {
            o["console"] = new JsonObject { ["regex"] = c.Regex };
        }

        if (p.TcpSocket is { } t)
        {
            o["tcpSocket"] = new JsonObject { ["port"] = t.Port };
        }

        if (p.HttpGet is { } h)
        {
            o["httpGet"] = new JsonObject { ["port"] = h.Port, ["path"] = h.Path };
        }

        return o;
    }

    private static ProbeSpec? ProbeFromJson(JsonNode? node) => node is not JsonObject o ? null : new ProbeSpec
    {
        Console = o["console"] is JsonObject c ? new ConsoleProbe((string?)c["regex"] ?? "") : null,
        TcpSocket = o["tcpSocket"] is JsonObject t ? new TcpSocketProbe((int?)t["port"] ?? 0) : null,
        HttpGet = o["httpGet"] is JsonObject h ? new HttpGetProbe((int?)h["port"] ?? 0, (string?)h["path"] ?? "/") : null,
        InitialDelaySeconds = (int?)o["initialDelaySeconds"] ?? 0,
        PeriodSeconds = (int?)o["periodSeconds"] ?? ProbeSpec.DefaultPeriodSeconds,
        TimeoutSeconds = (int?)o["timeoutSeconds"] ?? ProbeSpec.DefaultTimeoutSeconds,
        FailureThreshold = (int?)o["failureThreshold"] ?? ProbeSpec.DefaultFailureThreshold,
    };

    public static MicroVmSpec SpecFromJson(string name, string ns, JsonObject? labels, JsonObject spec)
    {
        var kernel = spec["kernel"] as JsonObject ?? new JsonObject();
        return new MicroVmSpec
        {
            Id = name,
            Namespace = ns,
            Labels = labels is null
                ? new Dictionary<string, string>()
                : labels.Where(kv => kv.Key != NodeLabel).ToDictionary(kv => kv.Key, kv => (string?)kv.Value ?? "", StringComparer.Ordinal),
            Vcpu = (int?)spec["vcpu"] ?? 1,
            MemoryInMb = (int?)spec["memoryInMb"] ?? 128,
            Kernel = new KernelSpec
            {
                Image = (string?)kernel["image"] ?? "",
                Filename = (string?)kernel["filename"],
                Cmdline = ReadMap(kernel["cmdline"]),
                AddNetworkConfig = (bool?)kernel["addNetworkConfig"] ?? false,
            },
            Initrd = spec["initrd"] is JsonObject initrd
                ? new InitrdSpec { Image = (string?)initrd["image"] ?? "", Filename = (string?)initrd["filename"] }
                : null,
            RootVolume = spec["rootVolume"] is JsonObject root ? VolumeFromJson(root) : null,
            AdditionalVolumes = spec["additionalVolumes"] is JsonArray vols
                ? vols.OfType<JsonObject>().Select(VolumeFromJson).ToList()
                : [],
            Interfaces = spec["interfaces"] is JsonArray nics
                ? nics.OfType<JsonObject>().Select(InterfaceFromJson).ToList()
                : [],
            Metadata = ReadMap(spec["metadata"]),
            Provider = (string?)spec["provider"] ?? "",
            State = ParseEnum(spec["state"], DesiredState.Running),
            RestartPolicy = ParseEnum(spec["restartPolicy"], RestartPolicy.Always),
            NodeName = (string?)spec["nodeName"] ?? "",
            ReadinessProbe = ProbeFromJson(spec["readinessProbe"]),
            LivenessProbe = ProbeFromJson(spec["livenessProbe"]),

            // snapshots
            RestoreFrom = (string?)spec["restoreFrom"] is { Length: > 0 } restoreFrom ? restoreFrom : null,

            // guest health: startup probe
            StartupProbe = ProbeFromJson(spec["startupProbe"]),
            // Kubernetes (issue 13)
            Placement = spec["placement"] is JsonObject placement ? PlacementFromJson(placement) : null,
        };
    }

    /// <summary>Kubernetes (issue 13): spec.placement in the CRD's shape (the pod's own field names).</summary>
    private static JsonObject PlacementToJson(PlacementSpec p)
    {
        var o = new JsonObject();
        if (p.NodeSelector.Count > 0)
        {
            o["nodeSelector"] = Map(p.NodeSelector);
        }

        if (p.Tolerations.Count > 0)
        {
            o["tolerations"] = new JsonArray([.. p.Tolerations.Select(t =>
            {
                var j = new JsonObject();
                if (t.Key.Length > 0)
                {
                    j["key"] = t.Key;
                }

                if (t.Operator.Length > 0)
                {
                    j["operator"] = t.Operator;
                }

                if (t.Value.Length > 0)
                {
                    j["value"] = t.Value;
                }

                if (t.Effect.Length > 0)
                {
                    j["effect"] = t.Effect;
                }

                if (t.TolerationSeconds is { } seconds)
                {
                    j["tolerationSeconds"] = seconds;
                }

                return (JsonNode)j;
            })]);
        }

        if (p.AffinityJson is { } affinity && JsonNode.Parse(affinity) is JsonObject a)
        {
            o["affinity"] = a;
        }

        if (p.PriorityClassName.Length > 0)
        {
            o["priorityClassName"] = p.PriorityClassName;
        }

        return o;
    }

    private static PlacementSpec PlacementFromJson(JsonObject o) => new()
    {
        NodeSelector = ReadMap(o["nodeSelector"]),
        Tolerations = o["tolerations"] is JsonArray tolerations
            ? [.. tolerations.OfType<JsonObject>().Select(t => new TolerationSpec
            {
                Key = (string?)t["key"] ?? "",
                Operator = (string?)t["operator"] ?? "",
                Value = (string?)t["value"] ?? "",
                Effect = (string?)t["effect"] ?? "",
                TolerationSeconds = (long?)t["tolerationSeconds"],
            })]
            : [],
        AffinityJson = o["affinity"] is JsonObject affinity ? affinity.ToJsonString() : null,
        PriorityClassName = (string?)o["priorityClassName"] ?? "",
    };

    public static JsonObject StatusToJson(MicroVmStatus s)
    {
        var status = new JsonObject
        {
            ["phase"] = s.Phase.ToString(),
            ["observedGeneration"] = s.ObservedGeneration,
            ["restartCount"] = s.RestartCount,
        };
        if (s.Conditions.Count > 0)
        {
            status["conditions"] = new JsonArray(s.Conditions.Select(c => (JsonNode)new JsonObject
            {
                ["type"] = c.Type,
                ["status"] = c.Status.ToString(),
                ["reason"] = c.Reason,
                ["message"] = c.Message,
                ["lastTransitionTime"] = FormatTime(c.LastTransitionTime),
                ["observedGeneration"] = c.ObservedGeneration,
            }).ToArray());
        }

        if (s.Pid is { } pid)
        {
            status["pid"] = pid;
        }

        if (s.Node is { } node)
        {
            status["node"] = node;
        }

        if (s.ConsoleLogPath is { } log)
        {
            status["consoleLogPath"] = log;
        }

        if (s.BootTime is { } boot)
        {
            status["bootTime"] = FormatTime(boot);
        }

        if (s.Addresses.Count > 0)
        {
            status["addresses"] = new JsonArray(s.Addresses.Select(a => (JsonNode?)JsonValue.Create(a)).ToArray());
        }

        if (s.Runtime is { } runtime)
        {
            status["runtime"] = runtime;
        }

        // Guest health (issue 14).
        if (s.GuestReadyTime is { } ready)
        {
            status["guestReadyTime"] = FormatTime(ready);
        }

        if (s.GuestReadySeconds is { } readySeconds)
        {
            status["guestReadySeconds"] = readySeconds;
        }

        if (s.ConsoleBootOffset is { } offset)
        {
            status["consoleBootOffset"] = offset;
        }

        // Node networking (issue 12).
        if (s.Interfaces.Count > 0)
        {
            status["interfaces"] = new JsonArray([.. s.Interfaces.Select(i =>
            {
                var o = new JsonObject { ["deviceId"] = i.DeviceId, ["hostDevice"] = i.HostDevice, ["mac"] = i.Mac };
                if (i.GuestAddress is { } address)
                {
                    o["guestAddress"] = address;
                }

                if (i.Bridge is { } bridge)
                {
                    o["bridge"] = bridge;
                }

                return (JsonNode)o;
            })]);
        }

        if (s.PortForwards.Count > 0)
        {
            status["portForwards"] = new JsonArray([.. s.PortForwards.Select(f => (JsonNode)f)]);
        }

        // Images (issue 11).
        if (s.Images.Count > 0)
        {
            status["images"] = new JsonArray([.. s.Images.Select(i =>
            {
                var o = new JsonObject { ["reference"] = i.Reference, ["state"] = i.State, ["bytesDone"] = i.BytesDone, ["bytesTotal"] = i.BytesTotal };
                if (i.Digest is { } digest)
                {
                    o["digest"] = digest;
                }

                if (i.Message is { } message)
                {
                    o["message"] = message;
                }

                return (JsonNode)o;
            })]);
        }

        // snapshots (issue 14)
        if (s.RestoredFrom is { } restoredFrom)
        {
            status["restoredFrom"] = restoredFrom;
        }

        if (s.LastSnapshot is { } lastSnapshot)
        {
            status["lastSnapshot"] = lastSnapshot;
        }

        if (s.LastSnapshotTime is { } lastSnapshotTime)
        {
            status["lastSnapshotTime"] = FormatTime(lastSnapshotTime);
        }

        return status;
    }

    public static MicroVmStatus StatusFromJson(JsonObject s) => new()
    {
        Phase = ParseEnum(s["phase"], Phase.Pending),
        ObservedGeneration = (long?)s["observedGeneration"] ?? 0,
        RestartCount = (int?)s["restartCount"] ?? 0,
        Conditions = s["conditions"] is JsonArray conditions
            ? conditions.OfType<JsonObject>().Select(c => new Condition(
                (string?)c["type"] ?? "",
                ParseEnum(c["status"], ConditionStatus.Unknown),
                (string?)c["reason"] ?? "",
                (string?)c["message"] ?? "",
                c["lastTransitionTime"] is { } t ? ParseTime((string)t!) : default,
                (long?)c["observedGeneration"] ?? 0)).ToList()
            : [],
        Pid = (int?)s["pid"],
        Node = (string?)s["node"],
        ConsoleLogPath = (string?)s["consoleLogPath"],
        BootTime = s["bootTime"] is { } boot ? ParseTime((string)boot!) : null,
        Addresses = s["addresses"] is JsonArray addresses ? addresses.Select(a => (string?)a ?? "").ToList() : [],
        Runtime = (string?)s["runtime"],
        GuestReadyTime = s["guestReadyTime"] is { } ready ? ParseTime((string)ready!) : null,
        GuestReadySeconds = (double?)s["guestReadySeconds"],
        ConsoleBootOffset = (long?)s["consoleBootOffset"],

        // Node networking (issue 12).
        Interfaces = s["interfaces"] is JsonArray nics
            ? [.. nics.OfType<JsonObject>().Select(i => new InterfaceStatus(
                (string?)i["deviceId"] ?? "", (string?)i["hostDevice"] ?? "", (string?)i["mac"] ?? "", (string?)i["guestAddress"], (string?)i["bridge"]))]
            : [],
        PortForwards = s["portForwards"] is JsonArray forwards ? [.. forwards.Select(f => (string?)f ?? "")] : [],

        // Images (issue 11).
        Images = s["images"] is JsonArray images
            ? [.. images.OfType<JsonObject>().Select(i => new ImageStatus(
                (string?)i["reference"] ?? "", (string?)i["state"] ?? "", (string?)i["digest"], (long?)i["bytesDone"] ?? 0, (long?)i["bytesTotal"] ?? -1, (string?)i["message"]))]
            : [],
        // snapshots (issue 14)
        RestoredFrom = (string?)s["restoredFrom"],
        LastSnapshot = (string?)s["lastSnapshot"],
        LastSnapshotTime = s["lastSnapshotTime"] is { } snapshotTime ? ParseTime((string)snapshotTime!) : null,
    };

    private static JsonObject VolumeToJson(VolumeSpec v)
    {
        var o = new JsonObject { ["id"] = v.Id };
        if (v.HostPath.Length > 0)
        {
            o["hostPath"] = v.HostPath; // absent for a scratch disk (sizeInMb only)
        }

        if (v.IsReadOnly)
        {
            o["readOnly"] = true;
        }

        if (v.MountPoint is { } mp)
        {
            o["mountPoint"] = mp;
        }

        if (v.SizeInMb is { } size)
        {
            o["sizeInMb"] = size;
        }

        if (v.PartitionId is { } partition)
        {
            o["partitionId"] = partition;
        }

        if (v.ContainerSource is { } containerSource)
        {
            o["containerSource"] = containerSource; // images (issue 11)
        }

        return o;
    }

    private static VolumeSpec VolumeFromJson(JsonObject o) => new()
    {
        Id = (string?)o["id"] ?? "",
        HostPath = (string?)o["hostPath"] ?? "",
        IsReadOnly = (bool?)o["readOnly"] ?? false,
        MountPoint = (string?)o["mountPoint"],
        SizeInMb = (int?)o["sizeInMb"],
        PartitionId = (string?)o["partitionId"],
        ContainerSource = (string?)o["containerSource"],
    };

    private static JsonObject InterfaceToJson(NetworkInterfaceSpec n)
    {
        var o = new JsonObject { ["deviceId"] = n.DeviceId, ["type"] = n.Type.ToString() };
        if (n.GuestMac is { } mac)
        {
            o["guestMac"] = mac;
        }

        if (n.Bridge is { } bridge)
        {
            o["bridge"] = bridge;
        }

        if (n.Address is { } address)
        {
            o["address"] = address;
        }

        if (n.Gateway is { } gateway)
        {
            o["gateway"] = gateway;
        }

        if (n.Nameservers.Count > 0)
        {
            o["nameservers"] = new JsonArray([.. n.Nameservers.Select(ns => (JsonNode)ns)]);
        }

        // Node networking (issue 12).
        if (n.Ports.Count > 0)
        {
            o["ports"] = new JsonArray([.. n.Ports.Select(p => (JsonNode)new JsonObject
            {
                ["hostPort"] = p.HostPort, ["guestPort"] = p.GuestPort, ["protocol"] = p.Protocol,
            })]);
        }

        if (n.Parent is { } parent)
        {
            o["macvtapParent"] = parent;
        }

        return o;
    }

    private static NetworkInterfaceSpec InterfaceFromJson(JsonObject o) => new()
    {
        DeviceId = (string?)o["deviceId"] ?? "",
        Type = ParseEnum(o["type"], InterfaceType.Tap),
        GuestMac = (string?)o["guestMac"],
        Bridge = (string?)o["bridge"],
        Address = (string?)o["address"],
        Gateway = (string?)o["gateway"],
        Nameservers = o["nameservers"] is JsonArray dns ? [.. dns.Select(ns => (string?)ns ?? "")] : [],

        // Node networking (issue 12).
        Ports = o["ports"] is JsonArray ports
            ? [.. ports.OfType<JsonObject>().Select(p => new PortForward((int?)p["hostPort"] ?? 0, (int?)p["guestPort"] ?? 0, (string?)p["protocol"] ?? "tcp"))]
            : [],
        Parent = (string?)o["macvtapParent"],
    };

    private static JsonObject Map(IReadOnlyDictionary<string, string> map)
    {
        var o = new JsonObject();
        foreach (var (k, v) in map.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            o[k] = v;
        }

        return o;
    }

    private static Dictionary<string, string> ReadMap(JsonNode? node) =>
        node is JsonObject o
            ? o.ToDictionary(kv => kv.Key, kv => kv.Value?.GetValueKind() == System.Text.Json.JsonValueKind.String ? (string)kv.Value! : kv.Value?.ToJsonString() ?? "", StringComparer.Ordinal)
            : new Dictionary<string, string>(StringComparer.Ordinal);

    private static T ParseEnum<T>(JsonNode? node, T fallback)
        where T : struct, Enum =>
        node is not null && Enum.TryParse<T>((string?)node, ignoreCase: true, out var value) ? value : fallback;
}

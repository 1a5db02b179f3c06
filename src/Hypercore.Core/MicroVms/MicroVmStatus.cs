namespace Hypercore.MicroVms;

/// <summary>Observed state, written only by the reconciler.</summary>
public sealed record MicroVmStatus
{
    public static readonly MicroVmStatus Initial = new();

    public Phase Phase { get; init; } = Phase.Pending;

    /// <remarks>Up to four kept packed (issue 15, s31: <see cref="PackedConditions"/>, one small object whose templates are
    /// shared between statuses); more as an exact-size array (survive7: a <see cref="List{T}"/> given here, a JSON
    /// reader's, is copied into one, so the status keeps one object for its conditions, not a list and its larger array).</remarks>
    public IReadOnlyList<Condition> Conditions
    {
        get => _conditions;
        init => _conditions = Hypercore.MicroVms.Conditions.Keep(value);
    }

    private readonly IReadOnlyList<Condition> _conditions = [];

    public long ObservedGeneration { get; init; }

    public int? Pid { get; init; }

    public string? Node { get; init; }

    public string? ConsoleLogPath { get; init; }

    public DateTimeOffset? BootTime { get; init; }

    public IReadOnlyList<string> Addresses { get => _addresses; init => _addresses = Compact.List(value); }

    private readonly IReadOnlyList<string> _addresses = [];

    /// <summary>Restarts done by the reconciler after the VM ended on its own.</summary>
    public int RestartCount { get; init; }

    /// <summary>Provider-specific runtime detail worth showing, e.g. the QEMU accelerator actually used.</summary>
    public string? Runtime { get; init; }

    // Node networking (issue 12): what each interface got on the node.

    /// <summary>Per interface: host device, MAC and guest address, as the network start step prepared them.</summary>
    public IReadOnlyList<InterfaceStatus> Interfaces { get => _interfaces; init => _interfaces = Compact.List(value); }

    private readonly IReadOnlyList<InterfaceStatus> _interfaces = [];

    /// <summary>Port forwards in effect, e.g. "tcp 8080 -> 10.200.0.5:80".</summary>
    public IReadOnlyList<string> PortForwards { get => _portForwards; init => _portForwards = Compact.List(value); }

    private readonly IReadOnlyList<string> _portForwards = [];
    // Guest health (issue 14).

    /// <summary>When the GuestReady condition last became True (this boot's readiness).</summary>
    public DateTimeOffset? GuestReadyTime
    {
        get => _rare?.GuestReadyTime;
        init => SetRare(value is null, static (r, v) => r with { GuestReadyTime = v }, value);
    }

    /// <summary>Seconds from Create to the first GuestReady=True: the VM's boot SLO. Set once.</summary>
    public double? GuestReadySeconds
    {
        get => _rare?.GuestReadySeconds;
        init => SetRare(value is null, static (r, v) => r with { GuestReadySeconds = v }, value);
    }

    /// <summary>Length of the console log when the current boot started: console probes read this boot from here.</summary>
    public long? ConsoleBootOffset
    {
        get => _rare?.ConsoleBootOffset;
        init => SetRare(value is null, static (r, v) => r with { ConsoleBootOffset = v }, value);
    }

    // Images (issue 11): what the images start step resolved or is pulling, one entry per reference of the spec.

    /// <summary>Per OCI reference of the spec: its state, resolved digest and bytes pulled (set by the images start step).</summary>
    public IReadOnlyList<ImageStatus> Images
    {
        get => _rare?.Images ?? [];
        init => SetRare(value is null || value.Count == 0, static (r, v) => r with { Images = v is null || v.Count == 0 ? [] : v }, value); // null: a JSON reader's default
    }
    // snapshots (issue 14)

    /// <summary>The snapshot the current run was restored from (set at each start from spec.restoreFrom); null after a boot.</summary>
    public string? RestoredFrom
    {
        get => _rare?.RestoredFrom;
        init => SetRare(value is null, static (r, v) => r with { RestoredFrom = v }, value);
    }

    /// <summary>The latest snapshot taken of this VM (any way: vis, gRPC, MicroVMSnapshot), and when.</summary>
    public string? LastSnapshot
    {
        get => _rare?.LastSnapshot;
        init => SetRare(value is null, static (r, v) => r with { LastSnapshot = v }, value);
    }

    public DateTimeOffset? LastSnapshotTime
    {
        get => _rare?.LastSnapshotTime;
        init => SetRare(value is null, static (r, v) => r with { LastSnapshotTime = v }, value);
    }

    public bool Equals(MicroVmStatus? other) =>
        other is not null && Phase == other.Phase && ObservedGeneration == other.ObservedGeneration && Pid == other.Pid &&
        Node == other.Node && ConsoleLogPath == other.ConsoleLogPath && BootTime == other.BootTime &&
        RestartCount == other.RestartCount && Runtime == other.Runtime &&
        Hypercore.MicroVms.Conditions.Equal(Conditions, other.Conditions) && Addresses.SequenceEqual(other.Addresses) &&
        Interfaces.SequenceEqual(other.Interfaces) && PortForwards.SequenceEqual(other.PortForwards) &&
        GuestReadyTime == other.GuestReadyTime && GuestReadySeconds == other.GuestReadySeconds && ConsoleBootOffset == other.ConsoleBootOffset &&
        Images.SequenceEqual(other.Images) &&
        RestoredFrom == other.RestoredFrom && LastSnapshot == other.LastSnapshot && LastSnapshotTime == other.LastSnapshotTime; // snapshots

    public override int GetHashCode() => HashCode.Combine(Phase, ObservedGeneration, Pid);

    /// <summary>
    /// The fields only some VMs ever set (guest health with probes, OCI images, snapshots), kept in one object that a
    /// status without any of them does not have (issue 15, survivors): the informer and the store's caches keep every
    /// VM's status for its life, and these fields were ~100 of its ~220 bytes, copied by gen0 and gen1 collections
    /// for every new record. Immutable and shared by the copies a <c>with</c> makes; a change replaces it.
    /// </summary>
    private RareFields? _rare;

    /// <summary>Sets one rare field: nothing is allocated while every rare field is at its default.</summary>
    private void SetRare<T>(bool isDefault, Func<RareFields, T, RareFields> set, T value)
    {
        if (isDefault && _rare is null)
        {
            return;
        }

        var next = set(_rare ?? RareFields.None, value);
        _rare = next.IsNone ? null : next;
    }

    private sealed record RareFields
    {
        public static readonly RareFields None = new();

        public DateTimeOffset? GuestReadyTime { get; init; }

        public double? GuestReadySeconds { get; init; }

        public long? ConsoleBootOffset { get; init; }

        public IReadOnlyList<ImageStatus> Images { get; init; } = [];

        public string? RestoredFrom { get; init; }

        public string? LastSnapshot { get; init; }

        public DateTimeOffset? LastSnapshotTime { get; init; }

        public bool IsNone =>
            GuestReadyTime is null && GuestReadySeconds is null && ConsoleBootOffset is null && Images.Count == 0 &&
            RestoredFrom is null && LastSnapshot is null && LastSnapshotTime is null;
    }

    public Condition? FindCondition(string type) => Hypercore.MicroVms.Conditions.Find(Conditions, type);
}

/// <summary>
/// Images (issue 11): one OCI reference of the spec. <paramref name="State"/>: Resolving, Pulling, Unpacking,
/// BuildingDisk, Ready, BackOff. <paramref name="Digest"/> once known; bytes of config + layers (total -1 until known).
/// <paramref name="Message"/>: the error while backing off, or a note (the last known digest used while the registry is down).
/// </summary>
public sealed record ImageStatus(string Reference, string State, string? Digest, long BytesDone, long BytesTotal, string? Message = null);

/// <summary>One interface on the node (node networking): its host device (tap or macvtap), MAC and guest address (CIDR).</summary>
public sealed record InterfaceStatus(string DeviceId, string HostDevice, string Mac, string? GuestAddress, string? Bridge = null);

public enum ConditionStatus
{
    True,
    False,
    Unknown,
}

/// <summary>Kubernetes-shaped condition.</summary>
public sealed record Condition(
    string Type,
    ConditionStatus Status,
    string Reason,
    string Message,
    DateTimeOffset LastTransitionTime,
    long ObservedGeneration);

/// <summary>Well-known condition types and reasons.</summary>
public static class Conditions
{
    public const string Ready = "Ready";
    public const string Paused = "Paused";
    public const string Synchronized = "Synchronized";

    /// <summary>True while (and after) the hypervisor stopped answering for longer than allowed; reason and message say what was done.</summary>
    public const string Unresponsive = "Unresponsive";

    /// <summary>Guest health (issue 14): the readiness probe's verdict on this boot, with the probe's message.</summary>
    public const string GuestReady = "GuestReady";

    public const string ReasonProviderUnavailable = "ProviderUnavailable";
    public const string ReasonUnsupported = "Unsupported";
    public const string ReasonReconcileError = "ReconcileError";
    public const string ReasonReconciled = "Reconciled";

    /// <summary>
    /// Sets a condition, keeping LastTransitionTime when the status did not flip (Kubernetes meta.SetStatusCondition).
    /// The result is sorted by type with no type twice; up to four are packed (<see cref="PackedConditions"/>).
    /// </summary>
    public static IReadOnlyList<Condition> Set(
        IReadOnlyList<Condition> existing, string type, ConditionStatus status, string reason, string message,
        long generation, DateTimeOffset now)
    {
        // Nothing to change (issue 15, alloc9): the same list back, as the new one would have been equal to it. Every
        // reconcile sets Ready and Synchronized (and a running VM's Paused) again, and a poll of a running VM finds them
        // as they were: that was three conditions and three arrays per pass for nothing.
        if (existing is PackedConditions packed)
        {
            var at = packed.IndexOf(type);
            if (at >= 0 && packed.Template(at).Says(status, reason, message, generation) && packed.IsOrderedOnce())
            {
                return packed;
            }
        }
        else if (Find(existing, type) is { } found && found.Status == status && found.ObservedGeneration == generation &&
            found.Reason == reason && found.Message == message && existing is Condition[] same && IsOrderedOnce(same))
        {
            return same;
        }

        // What existing.Where(c => c.Type != type).Append(updated).OrderBy(c => c.Type, Ordinal).ToList() gave, without
        // its iterators, closures and sorter (issue 15: ~3.5 KB allocated per Create): a stable insertion sort by type,
        // on this thread's scratch of (template, time) pairs, then packed.
        var count = existing.Count;
        var templates = t_templates is { } t && t.Length > count ? t : t_templates = new ConditionTemplate[Math.Max(8, count + 1)];
        var ticks = t_ticks is { } k && k.Length > count ? k : t_ticks = new long[templates.Length];
        ConditionTemplate? old = null;
        long oldTicks = 0;
        var n = 0;
        for (var i = 0; i < count; i++)
        {
            ConditionTemplate template;
            long at;
            if (existing is PackedConditions p)
            {
                template = p.Template(i);
                at = p.Ticks(i);
            }
            else
            {
                var c = existing[i];
                template = ConditionTemplate.Of(c.Type, c.Status, c.Reason, c.Message, c.ObservedGeneration);
                at = c.LastTransitionTime.UtcTicks;
            }

            if (template.Type != type)
            {
                templates[n] = template;
                ticks[n++] = at;
            }
            else if (old is null)
            {
                old = template; // the first of the type decides the transition time
                oldTicks = at;
            }
        }

        templates[n] = ConditionTemplate.Of(type, status, reason, message, generation);
        ticks[n++] = old is not null && old.Status == status ? oldTicks : now.UtcTicks;
        for (var i = 1; i < n; i++)
        {
            var item = templates[i];
            var itemTicks = ticks[i];
            var j = i - 1;
            while (j >= 0 && string.CompareOrdinal(templates[j].Type, item.Type) > 0)
            {
                templates[j + 1] = templates[j];
                ticks[j + 1] = ticks[j];
                j--;
            }

            templates[j + 1] = item;
            ticks[j + 1] = itemTicks;
        }

        IReadOnlyList<Condition> result;
        if (n <= PackedConditions.Capacity)
        {
            result = PackedConditions.Of(templates.AsSpan(0, n), ticks.AsSpan(0, n));
        }
        else
        {
            // An array of the exact size rather than a List (issue 15, survivors): the status keeps it for the VM's life.
            var list = new Condition[n];
            for (var i = 0; i < n; i++)
            {
                var template = templates[i];
                list[i] = new Condition(template.Type, template.Status, template.Reason, template.Message, new DateTimeOffset(ticks[i], TimeSpan.Zero), template.ObservedGeneration);
            }

            result = list;
        }

        Array.Clear(templates, 0, n); // the scratch keeps no template alive
        return result;
    }

    [ThreadStatic]
    private static ConditionTemplate[]? t_templates;

    [ThreadStatic]
    private static long[]? t_ticks;

    /// <summary>What a status keeps of <paramref name="value"/>: packed up to four, else an exact-size array (or the list given).</summary>
    internal static IReadOnlyList<Condition> Keep(IReadOnlyList<Condition>? value) => value switch
    {
        null or { Count: 0 } => [],
        PackedConditions packed => packed,
        { Count: <= PackedConditions.Capacity } => PackedConditions.Of(value),
        List<Condition> list => list.ToArray(),
        _ => value,
    };

    /// <summary>Same conditions in the same order (instants compared, as <see cref="Condition"/>'s equality does).</summary>
    public static bool Equal(IReadOnlyList<Condition> a, IReadOnlyList<Condition> b) =>
        ReferenceEquals(a, b) ||
        (a is PackedConditions pa && b is PackedConditions pb ? pa.SameAs(pb) : a.Count == b.Count && a.SequenceEqual(b));

    /// <summary>Sorted by type with no type twice: what <see cref="Set"/> would make of it.</summary>
    private static bool IsOrderedOnce(Condition[] conditions)
    {
        for (var i = 1; i < conditions.Length; i++)
        {
            if (string.CompareOrdinal(conditions[i - 1].Type, conditions[i].Type) >= 0)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The first condition of <paramref name="type"/>, or null (FirstOrDefault without a closure per call).</summary>
    public static Condition? Find(IReadOnlyList<Condition> conditions, string type)
    {
        if (conditions is PackedConditions packed)
        {
            var at = packed.IndexOf(type);
            return at < 0 ? null : packed[at];
        }

        for (var i = 0; i < conditions.Count; i++)
        {
            if (conditions[i].Type == type)
            {
                return conditions[i];
            }
        }

        return null;
    }
}

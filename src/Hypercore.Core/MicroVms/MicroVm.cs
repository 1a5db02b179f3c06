namespace Hypercore.MicroVms;

/// <summary>The lifecycle a writer asks for. Start/Stop/Pause/Resume only set this.</summary>
public enum DesiredState
{
    Running,
    Stopped,
    Paused,
}

/// <summary>What the reconciler does when the hypervisor process ends without being asked to.</summary>
public enum RestartPolicy
{
    Always,
    OnFailure,
    Never,
}

/// <summary>Observed phase, written only by the reconciler.</summary>
public enum Phase
{
    Pending,
    Provisioning,
    Running,
    Paused,
    Stopping,
    Stopped,
    Failed,
    Deleting,
    CrashLoopBackOff,
}

/// <summary>Identity of a record: namespace plus id (flintlock's namespace/name).</summary>
public readonly record struct VmKey(string Namespace, string Id)
{
    public override string ToString() => $"{Namespace}/{Id}";

    public static VmKey Parse(string value)
    {
        var slash = value.IndexOf('/', StringComparison.Ordinal);
        return slash < 0 ? new VmKey(MicroVmSpec.DefaultNamespace, value) : new VmKey(value[..slash], value[(slash + 1)..]);
    }
}

/// <summary>A MicroVM: desired state (spec) plus observed state (status) plus bookkeeping.</summary>
public sealed record MicroVm
{
    public required string Uid { get; init; }

    /// <summary>
    /// A uid becomes a directory name under the run directory (<c>run/&lt;provider&gt;/&lt;uid&gt;</c>): refuse anything
    /// that could step outside it. The drivers make no directory for any other uid.
    /// </summary>
    public static bool IsSafeUid(string uid) =>
        uid.Length is > 0 and <= 64 && uid.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') && uid is not "." and not "..";

    public required MicroVmSpec Spec { get; init; }

    /// <summary>Bumped by every spec change, never by status writes (Kubernetes semantics).</summary>
    public long Generation { get; init; } = 1;

    /// <summary>Opaque optimistic-concurrency token; changes on every write.</summary>
    public required string ResourceVersion { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Set when deletion was requested; the record stays until the reconciler has cleaned up.</summary>
    public DateTimeOffset? DeletionRequestedAt { get; init; }

    public MicroVmStatus Status { get; init; } = MicroVmStatus.Initial;

    /// <summary>True once a node's reconciler has claimed the record (Kubernetes: its finalizer is on).</summary>
    public bool Claimed { get; init; }

    public VmKey Key => new(Spec.Namespace, Spec.Id);

    public bool IsDeleting => DeletionRequestedAt is not null;
}

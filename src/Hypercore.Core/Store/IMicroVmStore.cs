using Hypercore.MicroVms;

namespace Hypercore.Store;

/// <summary>
/// The desired-state store port. Two homes implement it: SQLite (standalone) and MicroVM custom resources
/// (Kubernetes). Both pass the same contract test suite. Every write is durable before the call returns.
/// </summary>
public interface IMicroVmStore
{
    /// <summary>Short name for logs and the README ("sqlite", "kubernetes").</summary>
    string Name { get; }

    Task<MicroVm?> GetAsync(VmKey key, CancellationToken cancellationToken = default);

    /// <summary>Finds a record by its uid, or null.</summary>
    Task<MicroVm?> GetByUidAsync(string uid, CancellationToken cancellationToken = default);

    /// <summary>All records, or those in one namespace, ordered by namespace then id.</summary>
    Task<IReadOnlyList<MicroVm>> ListAsync(string? @namespace = null, CancellationToken cancellationToken = default);

    /// <summary>Stores a new record with a fresh uid and generation 1.</summary>
    /// <exception cref="AlreadyExistsException">a record with the same namespace/id exists.</exception>
    Task<MicroVm> CreateAsync(MicroVmSpec spec, CancellationToken cancellationToken = default);

    /// <summary>Replaces the spec if the record still has <paramref name="expectedResourceVersion"/>; bumps generation when the spec changed.</summary>
    /// <exception cref="NotFoundException">no such record.</exception>
    /// <exception cref="ConflictException">the record changed since it was read.</exception>
    Task<MicroVm> UpdateSpecAsync(VmKey key, MicroVmSpec spec, string expectedResourceVersion, CancellationToken cancellationToken = default);

    /// <summary>Writes status (never the spec, never the generation) with optimistic concurrency.</summary>
    /// <exception cref="NotFoundException">no such record.</exception>
    /// <exception cref="ConflictException">the record changed since it was read.</exception>
    Task<MicroVm> UpdateStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default);

    /// <summary>
    /// Marks the record as owned by this node's reconciler before any hypervisor work (Kubernetes: adds the
    /// finalizer; SQLite: records the node). Idempotent.
    /// </summary>
    Task<MicroVm> ClaimAsync(VmKey key, CancellationToken cancellationToken = default);

    /// <summary>
    /// True when <see cref="ClaimWithStatusAsync"/> is one durable write (SQLite), and so is <see cref="CreateClaimedAsync"/>.
    /// The reconciler then claims a VM created Stopped in its Stopped write (issue 15), and a Create made where it runs
    /// is stored already claimed (<see cref="Reconciliation.IClaimAtCreate"/>); with two writes (this default: Kubernetes'
    /// finalizer) it claims first, as before.
    /// </summary>
    bool ClaimWithStatusIsOneWrite => false;

    /// <summary>
    /// <see cref="CreateAsync"/> with the record already claimed by this node and carrying <paramref name="status"/>, in
    /// the Create's own durable write (issue 15, claim14): the claim the reconciler's first pass would write, made where the
    /// Create is, so the pass finds it done. Only where <see cref="ClaimWithStatusIsOneWrite"/>; this default refuses,
    /// since two writes would leave an unclaimed record in between that a reconciler could claim first.
    /// </summary>
    /// <exception cref="AlreadyExistsException">a record with the same namespace/id exists.</exception>
    Task<MicroVm> CreateClaimedAsync(MicroVmSpec spec, MicroVmStatus status, CancellationToken cancellationToken = default) =>
        Task.FromException<MicroVm>(new NotSupportedException($"the {Name} store cannot create a claimed record in one write"));

    /// <summary>
    /// <see cref="ClaimAsync"/> and <see cref="UpdateStatusAsync"/> together: when the call returns the record is
    /// claimed and carries <paramref name="status"/>. The SQLite store does both in one durable write (issue 15: the
    /// reconciler's first write for a new VM is its claim and Provisioning). This default does the two writes, the
    /// status first because it checks the version; on Kubernetes the claim is the finalizer, a write of its own.
    /// </summary>
    /// <exception cref="NotFoundException">no such record.</exception>
    /// <exception cref="ConflictException">the record changed since it was read.</exception>
    async Task<MicroVm> ClaimWithStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default)
    {
        await UpdateStatusAsync(key, status, expectedResourceVersion, cancellationToken);
        return await ClaimAsync(key, cancellationToken);
    }

    /// <summary>Requests deletion; the record stays (IsDeleting) until <see cref="RemoveAsync"/> after cleanup. Idempotent.</summary>
    /// <exception cref="NotFoundException">no such record.</exception>
    Task<MicroVm> MarkForDeletionAsync(VmKey key, CancellationToken cancellationToken = default);

    /// <summary>Removes the record for good (Kubernetes: removes the finalizer). Called only after cleanup. Missing is fine.</summary>
    Task RemoveAsync(VmKey key, CancellationToken cancellationToken = default);

    /// <summary>
    /// Changes made after the call, in order, until cancelled. A watcher that falls behind or loses its stream
    /// gets a <see cref="StoreEventType.Resync"/> event and should re-list.
    /// </summary>
    IAsyncEnumerable<StoreEvent> WatchAsync(CancellationToken cancellationToken = default);
}

public enum StoreEventType
{
    Added,
    Modified,
    Deleted,

    /// <summary>Events may have been missed; re-list to catch up.</summary>
    Resync,
}

/// <summary>One change. <see cref="MicroVm"/> is the record after the change (before it, for Deleted); null for Resync.</summary>
public sealed record StoreEvent(StoreEventType Type, MicroVm? MicroVm);

public class StoreException(string message, Exception? inner = null) : Exception(message, inner);

public sealed class AlreadyExistsException(VmKey key)
    : StoreException($"microvm {key} already exists")
{
    public VmKey Key { get; } = key;
}

public sealed class NotFoundException(VmKey key)
    : StoreException($"microvm {key} not found")
{
    public VmKey Key { get; } = key;
}

public sealed class ConflictException(VmKey key)
    : StoreException($"microvm {key} was changed by someone else; read it again and retry")
{
    public VmKey Key { get; } = key;
}

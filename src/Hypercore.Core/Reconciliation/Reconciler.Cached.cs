using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Store;
using Microsoft.Extensions.Logging;

namespace Hypercore.Reconciliation;

/// <summary>
/// Issue 15: a reconcile reads the informer's cached record instead of reading and parsing the row again, but only
/// after the store confirms that the cached copy is the stored version (one indexed lookup, no JSON). A stale cache
/// (the informer has not seen the latest write yet) therefore never makes the reconciler act on an old spec or
/// status: it falls back to the store's read, as before. controller-runtime reads its cache unconditionally and
/// relies on optimistic concurrency at write time; the extra check keeps this reconciler's read semantics unchanged.
/// </summary>
/// <remarks>
/// One exception, a new VM (issue 15, fifth pass: the check was one store read per Create): a cached record that is
/// unclaimed, Pending and not being deleted is used without the check when the pass's first store write is a claim
/// checked against the cached version (claim + Provisioning, or claim + Stopped where that is one write) and nothing
/// is done before it but reads (availability, capabilities, the inspect). A stale copy then fails that write with
/// Conflict (or NotFound), nothing is written, and the pass starts again from the store's read (<see cref="StaleCopyException"/>).
/// Every other way through such a pass (a refusal, another node's VM, something live found for it) checks the version
/// first, as any other record.
/// <para>The one case that acts before its first write (issue 15, fifteenth pass): a VM claimed by this node at create as
/// Provisioning (<see cref="Reconciler.IsProvisioningSinceCreate"/>) with nothing live for its uid is started from the
/// informer's copy, and its Running write (or its failure's), checked against that copy's version, is the check. A copy
/// that was stale (the spec changed or a delete was asked in the moments since the Create) then costs a start that the
/// newer version's pass undoes: the write fails with Conflict and writes nothing, and that version is already queued by
/// the watch (the pass stops, restarts or deletes the VM it finds by its uid). That is how controller-runtime's controllers
/// work all the time; here it is only the window between a Create and its first pass. The copy was itself the Create's own
/// validated, authorized spec, so a stale start reaches nothing a caller was not given.</para>
/// </remarks>
public sealed partial class Reconciler
{
    private readonly IMicroVmCache? _cache;
    private readonly IResourceVersionCheck? _versions;

    /// <summary>Reads served from the informer's cache after a version check (for benchmarks and tests).</summary>
    public long CachedReads => Interlocked.Read(ref _cachedReads);

    /// <summary>
    /// Passes begun on a new VM's cached record without the version check (for benchmarks and tests); those that then
    /// took a way that checks it count in <see cref="CachedReads"/> too.
    /// </summary>
    public long UncheckedReads => Interlocked.Read(ref _uncheckedReads);

    /// <summary>Of <see cref="UncheckedReads"/>, those whose copy was stale: the pass began again from the store.</summary>
    public long StaleCopies => Interlocked.Read(ref _staleCopies);

    private long _cachedReads;
    private long _uncheckedReads;
    private long _staleCopies;

    /// <summary>The record for this pass; Unchecked: the informer's copy of a new VM, its version not confirmed.</summary>
    private async ValueTask<(MicroVm? Vm, bool Unchecked)> ReadCurrentAsync(VmKey key, CancellationToken ct)
    {
        if (_cache?.Get(key) is { } cached && _versions is not null)
        {
            if (CanUseUnchecked(cached))
            {
                Interlocked.Increment(ref _uncheckedReads);
                return (cached, true);
            }

            if (await _versions.IsCurrentAsync(key, cached.ResourceVersion, ct))
            {
                Interlocked.Increment(ref _cachedReads);
                return (cached, false);
            }
        }

        return (await _store.GetAsync(key, ct), false);
    }

    /// <summary>
    /// A new VM whose first write will be a claim checked against this version: claim + Provisioning (any desired state
    /// but Stopped), or claim + Stopped where the store makes that one write (<see cref="ClaimCanJoinStopped"/>). Or one
    /// claimed Stopped at create and unchanged since (<see cref="IsStoppedSinceCreate"/>), whose pass writes nothing and
    /// does nothing unless the inspect finds something, and then checks the version first. Or one claimed Provisioning at
    /// create and unchanged since (<see cref="IsProvisioningSinceCreate"/>), started from this copy when the inspect finds
    /// nothing for it, with its Running write checked against this version.
    /// </summary>
    private bool CanUseUnchecked(MicroVm cached) =>
        !cached.IsDeleting &&
        (!cached.Claimed && cached.Status.Phase == Phase.Pending && (cached.Spec.State != DesiredState.Stopped || _store.ClaimWithStatusIsOneWrite) ||
         IsStoppedSinceCreate(cached) || IsProvisioningSinceCreate(cached));

    /// <summary>
    /// Before anything in an unchecked pass other than its claim: the version check the read skipped. A stale copy
    /// ends the pass (nothing done yet) and it begins again from the store.
    /// </summary>
    private async ValueTask ConfirmAsync(MicroVm vm, bool isUnchecked, CancellationToken ct)
    {
        if (!isUnchecked)
        {
            return;
        }

        if (!await _versions!.IsCurrentAsync(vm.Key, vm.ResourceVersion, ct))
        {
            throw new StaleCopyException();
        }

        Interlocked.Increment(ref _cachedReads); // from here on a cached read like any other: checked
    }

    /// <summary>
    /// An unchecked pass found its copy stale: nothing was written or started from it, so what the pass noted of it is
    /// undone, and the record is read from the store for the same pass again (<see cref="ReconcilePassAsync"/>).
    /// </summary>
    private Task<MicroVm?> ReadAfterStaleCopyAsync(VmKey key, MicroVm stale, MicroVm? remembered, CancellationToken ct)
    {
        if (remembered is null)
        {
            ForgetHereIf(key, stale);
        }
        else
        {
            RememberHere(remembered);
        }

        Interlocked.Increment(ref _staleCopies);
        LogStaleCopy(key, stale.ResourceVersion);
        return _store.GetAsync(key, ct);
    }

    /// <summary>The first write of an unchecked pass failed its version check (or found no row): its copy was stale.</summary>
    private static bool IsStale(Exception ex, bool isUnchecked) => isUnchecked && ex is ConflictException or NotFoundException;

    /// <summary>An unchecked pass found its cached copy stale before it wrote or started anything.</summary>
    private sealed class StaleCopyException() : Exception("the cached copy of a new VM was not the stored version");

    [LoggerMessage(1220, LogLevel.Debug, "{Key}: the cached copy (version {Version}) was stale at the claim; reading the record from the store")]
    private partial void LogStaleCopy(VmKey key, string version);
}

using Hypercore.Admission;
using Hypercore.Drivers;
using Hypercore.GuestHealth;
using Hypercore.HostAccess;
using Hypercore.Images;
using Hypercore.MicroVms;
using Hypercore.Store;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Hypercore.Composition;

namespace Hypercore.Operations;

/// <summary>A lifecycle request: each only sets spec.state.</summary>
public enum LifecycleAction
{
    Start,
    Stop,
    Pause,
    Resume,
}

/// <summary>
/// The application layer: what every facade (vm.services.api, vistara, flintlock's service) does to desired state:
/// admit and create a spec, find and list records, set a record's desired state, request its deletion. The facades
/// never touch the store themselves. Only desired state is written here; no driver is ever called (the driver
/// registry is read only to name providers and check their capabilities). A refused request throws an
/// <see cref="OperationException"/> (and store failures a <see cref="StoreException"/>); each facade maps those to its
/// own status codes in one place.
/// </summary>
public sealed partial class MicroVmOperations
{
    private const int GeneratedIdAttempts = 5;

    private readonly IMicroVmStore _store;
    private readonly DriverRegistry _drivers;
    private readonly ImageCatalog _images;
    private readonly IMicroVmIdGenerator _ids;
    private readonly IOptionsMonitor<MicroVmOperationsOptions> _options;
    private readonly ILogger<MicroVmOperations> _log;
    private readonly HostPathPolicy? _hostPaths;
    private readonly NodeCapacity? _capacity; // admission: refuse at create what this node can never hold
    private readonly RegistryAllowList? _registries; // images (issue 11): registries a reference may name
    private readonly ProbeTargetPolicy? _probeTargets; // guest health: a probe may not be aimed at an address the node did not give
    private readonly Reconciliation.IClaimAtCreate? _claim; // issue 15 (claim14): the reconciler in this process, when there is one
    private readonly HostNetworkPolicy? _hostNetworks; // host bridges and forwarded host ports a TAP interface may take

    public MicroVmOperations(
        IMicroVmStore store,
        DriverRegistry drivers,
        ImageCatalog images,
        IMicroVmIdGenerator ids,
        IOptionsMonitor<MicroVmOperationsOptions> options,
        ILogger<MicroVmOperations> log,
        HostPathPolicy? hostPaths = null,
        NodeCapacity? capacity = null,
        RegistryAllowList? registries = null,
        ProbeTargetPolicy? probeTargets = null,
        Reconciliation.IClaimAtCreate? claim = null,
        HostNetworkPolicy? hostNetworks = null)
    {
        _claim = claim;
        _hostNetworks = hostNetworks;
        _registries = registries;
        _probeTargets = probeTargets;
        _hostPaths = hostPaths;
        _capacity = capacity;
        _store = store;
        _drivers = drivers;
        _images = images;
        _ids = ids;
        _options = options;
        _log = log;
    }

    /// <summary>
    /// Applies defaults (namespace "default", the node's default provider, a generated id), resolves an image name,
    /// checks the provider exists on this node, validates, and stores the spec. Every problem, including
    /// <paramref name="shapeErrors"/> found while reading the request, is reported in one InvalidArgument, and then
    /// nothing is written.
    /// </summary>
    public async Task<MicroVm> CreateAsync(MicroVmSpec requested, IEnumerable<string> shapeErrors, CancellationToken ct)
    {
        var errors = shapeErrors.ToList();
        var generateId = requested.Id.Length == 0;
        // issue 15 (alloc7): a spec that names its id, namespace and provider is used as it is, not copied unchanged.
        var spec = !generateId && requested.Namespace.Length > 0 && requested.Provider.Length > 0 ? requested : requested with
        {
            Id = generateId ? _ids.NewId() : requested.Id,
            Namespace = requested.Namespace.Length == 0 ? MicroVmSpec.DefaultNamespace : requested.Namespace,
            Provider = requested.Provider.Length == 0 ? _drivers.DefaultProvider : requested.Provider,
        };

        if (!_drivers.TryGet(spec.Provider, out _))
        {
            errors.Add($"provider \"{spec.Provider}\" is not available on this node; available providers: {AvailableProviders()}");
        }

        spec = _images.Resolve(spec, errors) ?? spec;
        errors.AddRange(MicroVmSpecValidator.Validate(spec));
        errors.AddRange(HostPathViolations(spec));
        errors.AddRange(_registries?.Violations(spec) ?? []);
        errors.AddRange(_hostNetworks?.Violations(spec) ?? []);
        errors.AddRange(_probeTargets?.CreateViolations(spec) ?? []);
        if (spec.Placement is not null && _store.Name != "kubernetes")
        {
            // Kubernetes (issue 13): only kube-scheduler places, and only the Kubernetes store reaches it.
            errors.Add($"placement: this daemon uses the {_store.Name} store, where the receiving node runs every MicroVM; placement needs --store kubernetes (leave placement out here)");
        }

        if (errors.Count > 0)
        {
            throw new InvalidSpecException(errors.Distinct().ToList());
        }

        if (_capacity is not null && spec.Placement is null && (spec.NodeName.Length == 0 || spec.NodeName == _capacity.Node) && _capacity.NeverFits(spec) is { } never)
        {
            throw new ResourceExhaustedException(never.Message);
        }

        // Issue 15 (claim14): where this process runs the reconciler, the record is stored with the claim and status its
        // first pass would write (the reconciler's answer, not decided here), in the Create's own write. It does not
        // depend on the id, so a generated id that collides keeps it.
        var claimed = _claim?.StatusAtCreate(spec);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var created = claimed is null ? await _store.CreateAsync(spec, ct) : await _store.CreateClaimedAsync(spec, claimed, ct);
                LogCreated(created.Key, created.Uid, created.Spec.Provider, created.Spec.Kernel.Image);
                return created;
            }
            catch (AlreadyExistsException) when (generateId && attempt < GeneratedIdAttempts)
            {
                spec = spec with { Id = _ids.NewId() }; // a generated id collided: the caller did not choose it, so pick another
            }
        }
    }

    /// <summary>
    /// Finds a record by uid, or by id within a namespace. With an empty namespace the id must be unique across
    /// namespaces (FailedPrecondition otherwise, naming them).
    /// </summary>
    public async Task<MicroVm> FindAsync(string id, string @namespace, string uid, CancellationToken ct)
    {
        if (uid.Length > 0)
        {
            return await _store.GetByUidAsync(uid, ct)
                ?? throw new MicroVmNotFoundException($"microvm with uid \"{uid}\" not found");
        }

        if (id.Length == 0)
        {
            throw new InvalidRequestException("id (or uid) is required");
        }

        if (@namespace.Length > 0)
        {
            return await _store.GetAsync(new VmKey(@namespace, id), ct)
                ?? throw new MicroVmNotFoundException($"microvm {@namespace}/{id} not found");
        }

        var matches = (await _store.ListAsync(null, ct)).Where(v => v.Spec.Id == id).ToList();
        return matches.Count switch
        {
            0 => throw new MicroVmNotFoundException($"microvm \"{id}\" not found in any namespace"),
            1 => matches[0],
            _ => throw new FailedPreconditionException(
                $"microvm id \"{id}\" exists in several namespaces ({string.Join(", ", matches.Select(m => m.Spec.Namespace))}); give the namespace"),
        };
    }

    /// <summary>Finds a record by uid, else by id (unique across namespaces): the seed's service takes either in one field.</summary>
    public async Task<MicroVm> FindByUidOrIdAsync(string uidOrId, CancellationToken ct)
    {
        if (uidOrId.Length == 0)
        {
            throw new InvalidRequestException("id is required (the uid or the name)");
        }

        return await _store.GetByUidAsync(uidOrId, ct) ?? await FindAsync(uidOrId, "", "", ct);
    }

    /// <summary>Records in <paramref name="namespace"/> (all when empty) whose id is <paramref name="id"/> (any when empty), ordered by namespace then id.</summary>
    public async Task<IReadOnlyList<MicroVm>> ListAsync(string @namespace, string id, CancellationToken ct)
    {
        var all = await _store.ListAsync(@namespace.Length == 0 ? null : @namespace, ct);
        return id.Length == 0 ? all : all.Where(v => v.Spec.Id == id).ToList();
    }

    /// <summary>Requests deletion; the reconciler stops the VM, removes its files, then the record. Idempotent.</summary>
    public async Task<MicroVm> DeleteAsync(MicroVm vm, CancellationToken ct)
    {
        var marked = await _store.MarkForDeletionAsync(vm.Key, ct);
        LogDeleteRequested(vm.Key, vm.Uid);
        return marked;
    }

    /// <summary>
    /// Sets spec.state for a lifecycle request with optimistic concurrency, re-reading and retrying when the record
    /// changed in between. A request whose target is already the desired state succeeds without writing.
    /// </summary>
    /// <remarks>
    /// Start → Running from any state (so Start of a paused VM resumes it). Stop → Stopped from any state.
    /// Pause of a stopped VM is refused ("start it first"), as is Pause when the provider cannot pause.
    /// Resume of a stopped VM is refused ("use Start"): resuming means continuing a paused guest, and silently
    /// booting a stopped one would surprise. Resume of a running VM succeeds as a no-op (idempotent).
    /// Any lifecycle request on a VM being deleted is refused.
    /// </remarks>
    public async Task<MicroVm> SetStateAsync(MicroVm vm, LifecycleAction action, CancellationToken ct)
    {
        var retries = _options.CurrentValue.LifecycleRetries;
        for (var attempt = 1; ; attempt++)
        {
            var target = Target(vm, action);
            if (vm.Spec.State == target)
            {
                return vm;
            }

            var wanted = vm.Spec with { State = target };
            if (_drivers.TryGet(vm.Spec.Provider, out var driver) &&
                CapabilityCheck.NewlyUnsupported(vm.Spec, wanted, driver) is { Count: > 0 } refusals)
            {
                throw new FailedPreconditionException(string.Join("; ", refusals));
            }

            try
            {
                var updated = await _store.UpdateSpecAsync(vm.Key, wanted, vm.ResourceVersion, ct);
                LogStateSet(vm.Key, action, vm.Spec.State, target);
                return updated;
            }
            catch (ConflictException) when (attempt < retries)
            {
                // The reconciler (or another writer) changed the record since it was read: read again and re-decide.
                vm = await _store.GetByUidAsync(vm.Uid, ct)
                    ?? throw new MicroVmNotFoundException($"microvm {vm.Key} was removed");
            }
        }
    }

    private DesiredState Target(MicroVm vm, LifecycleAction action)
    {
        if (vm.IsDeleting)
        {
            throw new FailedPreconditionException($"microvm {vm.Key} is being deleted");
        }

        var current = vm.Spec.State;
        switch (action)
        {
            case LifecycleAction.Start:
                return DesiredState.Running;
            case LifecycleAction.Stop:
                return DesiredState.Stopped;
            case LifecycleAction.Pause:
                if (current == DesiredState.Stopped)
                {
                    throw new FailedPreconditionException($"microvm {vm.Key} is stopped; start it first");
                }

                return DesiredState.Paused;
            case LifecycleAction.Resume:
                if (current == DesiredState.Stopped)
                {
                    throw new FailedPreconditionException($"microvm {vm.Key} is stopped, not paused; use Start");
                }

                return DesiredState.Running;
            default:
                throw new ArgumentOutOfRangeException(nameof(action), action, null);
        }
    }

    /// <summary>
    /// Issue 8: the host-path policy the drivers enforce before a start, checked here too so a spec naming a host
    /// file this node does not hand out is refused with InvalidArgument and nothing is written. (Kept as one call so
    /// it moves with this class.) The unikernel provider boots kernel.image only when it is a .img disk image.
    /// </summary>
    private IReadOnlyList<string> HostPathViolations(MicroVmSpec spec)
    {
        if (_hostPaths is null)
        {
            return [];
        }

        // An image name that did not resolve was reported by the image catalog already.
        var bootsKernel = Path.IsPathFullyQualified(spec.Kernel.Image) &&
            (spec.Provider != "unikernel" || spec.Kernel.Image.EndsWith(".img", StringComparison.OrdinalIgnoreCase));
        return _hostPaths.AdmissionViolations(spec, checkKernel: bootsKernel); // may reuse a pass of the last second: the drivers check again before a start
    }

    internal string AvailableProviders()
    {
        var names = _drivers.Names.Order(StringComparer.Ordinal).ToList();
        return names.Count == 0 ? "none" : string.Join(", ", names);
    }

    [LoggerMessage(1250, LogLevel.Information, "{Key}: created (uid {Uid}, provider {Provider}, kernel {Kernel})")]
    private partial void LogCreated(VmKey key, string uid, string provider, string kernel);

    [LoggerMessage(1251, LogLevel.Information, "{Key}: deletion requested (uid {Uid})")]
    private partial void LogDeleteRequested(VmKey key, string uid);

    [LoggerMessage(1252, LogLevel.Information, "{Key}: {Action}: desired state {From} -> {To}")]
    private partial void LogStateSet(VmKey key, LifecycleAction action, DesiredState from, DesiredState to);
}

public static class MicroVmOperationsServiceCollectionExtensions
{
    /// <summary>
    /// Adds the application layer (and its options, validated at start). Needs an <see cref="IMicroVmStore"/> and a
    /// <see cref="DriverRegistry"/> from the host. Safe to call more than once; each <paramref name="configure"/> applies.
    /// </summary>
    public static IServiceCollection AddMicroVmOperations(this IServiceCollection services, Action<MicroVmOperationsOptions>? configure = null)
    {
        services.AddValidatedOptions<MicroVmOperationsOptions, MicroVmOperationsOptionsValidator>(configure);
        // Factories, not implementation types: Composition/ServiceFactories says why.
        services.TryAddSingleton<IMicroVmIdGenerator>(_ => new RandomMicroVmIdGenerator());
        services.TryAddSingleton(sp => new ImageCatalog(sp.GetRequiredService<IOptionsMonitor<MicroVmOperationsOptions>>()));
        services.TryAddSingleton(sp => new MicroVmOperations(
            sp.GetRequiredService<IMicroVmStore>(), sp.GetRequiredService<DriverRegistry>(), sp.GetRequiredService<ImageCatalog>(),
            sp.GetRequiredService<IMicroVmIdGenerator>(), sp.GetRequiredService<IOptionsMonitor<MicroVmOperationsOptions>>(),
            sp.LoggerFor<MicroVmOperations>(), sp.GetService<HostPathPolicy>(), sp.GetService<NodeCapacity>(),
            sp.GetService<RegistryAllowList>(), sp.GetService<ProbeTargetPolicy>(), sp.GetService<Reconciliation.IClaimAtCreate>(),
            sp.GetService<HostNetworkPolicy>()));
        return services;
    }
}

using Hypercore.HostAccess;
using Hypercore.MicroVms;

namespace Hypercore.Images;

/// <summary>
/// Images (issue 11): which registries a caller's OCI reference may make the node (root) connect to. A reference
/// names any host:port, and the registry's answer lands in the VM's condition, so an open node would let a caller
/// probe services the node can reach. Only registries the operator listed (<c>allowed-registries</c>) or declared
/// plain-HTTP (<c>insecure-registries</c>, also an explicit choice) are pulled from; the default list is empty.
/// Checked at Create (InvalidArgument, nothing written) and again by the images start step before each pull,
/// because the settings may have changed between the two. Hosts compare as written in references (host[:port]),
/// ignoring case: <c>localhost:5000</c> does not allow <c>127.0.0.1:5000</c>.
/// </summary>
public sealed class RegistryAllowList
{
    /// <summary>vistarad setting names, as named in refusals.</summary>
    public const string Setting = "allowed-registries";
    public const string InsecureSetting = "insecure-registries";

    private readonly HashSet<string> _allowed;

    public RegistryAllowList(IEnumerable<string> allowed, IEnumerable<string>? insecure = null)
    {
        _allowed = new HashSet<string>(allowed.Concat(insecure ?? []).Select(h => h.Trim()).Where(h => h.Length > 0), StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Allowed registries (allowed and insecure together), sorted, for messages and docs.</summary>
    public IReadOnlyList<string> Registries => _allowed.Order(StringComparer.OrdinalIgnoreCase).ToList();

    /// <summary>The registry part of a reference as written (<c>localhost:5000</c> of <c>localhost:5000/x:1</c>); null for a non-reference.</summary>
    public static string? RegistryOf(string? reference) =>
        ImageSources.IsReference(reference) ? reference![..reference!.IndexOf('/', StringComparison.Ordinal)] : null;

    public bool IsAllowed(string registry) => _allowed.Contains(registry);

    /// <summary>Why <paramref name="reference"/> (in <paramref name="field"/>) may not be pulled, or null when it may (or is no reference).</summary>
    public string? Refusal(string field, string reference)
    {
        if (RegistryOf(reference) is not { } registry || IsAllowed(registry))
        {
            return null;
        }

        var now = _allowed.Count == 0 ? "none" : string.Join(",", Registries);
        return $"{field} \"{reference}\" names registry {registry}, which this node does not pull from (allowed: {now}); " +
            $"to allow it on purpose, add it to the vistarad setting {Setting} (--{Setting} {(_allowed.Count == 0 ? registry : now + "," + registry)})";
    }

    /// <summary>Every reference in the spec (kernel, initrd, container_source volumes) naming a registry not allowed.</summary>
    public IReadOnlyList<string> Violations(MicroVmSpec spec)
    {
        var errors = new List<string>();
        void Check(string field, string? text)
        {
            if (text is not null && Refusal(field, text) is { } refusal)
            {
                errors.Add(refusal);
            }
        }

        Check("kernel.image", spec.Kernel.Image);
        Check("initrd.image", spec.Initrd?.Image);
        foreach (var (volume, field) in HostPathPolicy.Volumes(spec))
        {
            Check($"{field} source.container_source", volume.ContainerSource);
        }

        return errors;
    }
}

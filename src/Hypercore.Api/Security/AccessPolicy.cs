namespace Hypercore.Api.Security;

/// <summary>What one identity may do: the namespaces it may use ("*" = all) and whether it may write.</summary>
public sealed record IdentityGrant(string Name, IReadOnlyList<string> Namespaces, bool Write)
{
    public const string AllNamespaces = "*";

    public static IdentityGrant Admin(string name) => new(name, [AllNamespaces], Write: true);

    public bool AllowsNamespace(string @namespace) =>
        Namespaces.Contains(AllNamespaces, StringComparer.Ordinal) || Namespaces.Contains(@namespace, StringComparer.Ordinal);

    public string Describe() =>
        (Namespaces.Contains(AllNamespaces, StringComparer.Ordinal) ? "every namespace" : "namespaces " + string.Join(", ", Namespaces)) +
        (Write ? ", read and write" : ", read only");
}

/// <summary>
/// Maps a caller to its grant. With no identities configured every authenticated caller is an administrator (the
/// credentials are the gate). Once any identity is listed, an identity that is not listed may do nothing, except the
/// built-in <see cref="Caller.UnixSocketIdentity"/> and <see cref="Caller.AnonymousIdentity"/>, which stay
/// administrators unless they are listed themselves (the socket's file mode is their access control).
/// </summary>
public sealed class AccessPolicy
{
    private readonly Dictionary<string, IdentityGrant> _grants;

    public AccessPolicy(IEnumerable<IdentityGrant> grants)
    {
        _grants = grants.ToDictionary(g => g.Name, StringComparer.Ordinal);
    }

    public bool HasIdentities => _grants.Count > 0;

    /// <summary>The caller's grant, or null when it may do nothing.</summary>
    public IdentityGrant? GrantFor(Caller caller)
    {
        if (_grants.TryGetValue(caller.Name, out var grant))
        {
            return grant;
        }

        if (_grants.Count == 0 || caller.Method is "unix-socket" or "none")
        {
            return IdentityGrant.Admin(caller.Name);
        }

        return null;
    }

    /// <summary>
    /// What the current request's caller may see, for readers that do not go through the store (the informer behind
    /// Watch): PermissionDenied when <paramref name="namespace"/> is named and not granted, otherwise a filter by the
    /// caller's namespaces. Outside a request everything is visible.
    /// </summary>
    public Func<global::Hypercore.MicroVms.MicroVm, bool> VisibleToCurrentCaller(string @namespace)
    {
        if (CallerContext.Current is not { } caller)
        {
            return _ => true;
        }

        var grant = GrantFor(caller) ?? throw new Grpc.Core.RpcException(new Grpc.Core.Status(
            Grpc.Core.StatusCode.PermissionDenied,
            $"identity \"{caller.Name}\" is not granted anything: list it in the daemon's [[identities]]"));
        if (@namespace.Length > 0 && !grant.AllowsNamespace(@namespace))
        {
            throw new Grpc.Core.RpcException(new Grpc.Core.Status(
                Grpc.Core.StatusCode.PermissionDenied,
                $"identity \"{caller.Name}\" may not use namespace \"{@namespace}\" (it may use {grant.Describe()})"));
        }

        return vm => grant.AllowsNamespace(vm.Spec.Namespace);
    }

    // snapshots: records that are not MicroVMs, checked by namespace like the store decorator checks MicroVMs

    /// <summary>Which namespaces the current caller may see (PermissionDenied when a named one is not granted).</summary>
    public Func<string, bool> NamespacesVisibleToCurrentCaller(string @namespace)
    {
        _ = VisibleToCurrentCaller(@namespace);
        var grant = CallerContext.Current is { } caller ? GrantFor(caller) : null;
        return ns => grant is null || grant.AllowsNamespace(ns);
    }

    /// <summary>PermissionDenied unless the current caller may write in <paramref name="namespace"/>; outside a request, nothing.</summary>
    public void RequireWrite(string @namespace)
    {
        _ = VisibleToCurrentCaller(@namespace);
        if (CallerContext.Current is { } caller && GrantFor(caller) is { Write: false } grant)
        {
            throw new Grpc.Core.RpcException(new Grpc.Core.Status(
                Grpc.Core.StatusCode.PermissionDenied,
                $"identity \"{caller.Name}\" may only read (it may use {grant.Describe()}); writes need write = true in [[identities]]"));
        }
    }
}

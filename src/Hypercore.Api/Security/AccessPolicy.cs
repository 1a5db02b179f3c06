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
}

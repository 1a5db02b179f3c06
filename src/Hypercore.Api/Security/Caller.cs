namespace Hypercore.Api.Security;

/// <summary>Who made a request, and how that was established.</summary>
/// <param name="Name">The identity: a token's name from the token file, a client certificate's CN (else its first DNS SAN),
/// <see cref="Caller.UnixSocketIdentity"/> or <see cref="Caller.AnonymousIdentity"/>.</param>
/// <param name="Method">"token", "client-certificate", "unix-socket" or "none".</param>
public sealed record Caller(string Name, string Method)
{
    /// <summary>A peer on the daemon's Unix socket: the socket's file mode and group are the access control.</summary>
    public const string UnixSocketIdentity = "unix";

    /// <summary>A caller on TCP when no credentials are configured at all (only allowed on loopback, or with --insecure).</summary>
    public const string AnonymousIdentity = "anonymous";

    public override string ToString() => $"{Name} ({Method})";
}

/// <summary>
/// The caller of the request being served, for code that has no HttpContext (the authorizing store). Set by
/// <see cref="ApiSecurityMiddleware"/> for every request and cleared when the request ends, like IHttpContextAccessor:
/// work that outlives a request and carried its execution context along sees no caller afterwards.
/// </summary>
public static class CallerContext
{
    private static readonly AsyncLocal<Holder?> Current_ = new();

    /// <summary>The caller of the current request; null outside requests (the reconciler, start-up, health checks).</summary>
    public static Caller? Current => Current_.Value?.Caller;

    internal static IDisposable Enter(Caller caller)
    {
        var holder = new Holder { Caller = caller };
        Current_.Value = holder;
        return holder; // issue 15 (alloc7): the holder is its own exit, one object per request instead of two
    }

    private sealed class Holder : IDisposable
    {
        public Caller? Caller { get; set; }

        // Clearing the holder is what ends the caller for everything that captured this execution context (as
        // IHttpContextAccessor does); the request's own context ends with the middleware's async method, so the
        // AsyncLocal is not set back to null (issue 15, alloc7: that made a new ExecutionContext per request).
        public void Dispose() => Caller = null;
    }
}

namespace Hypercore.Operations;

/// <summary>
/// A request the application layer refuses. The facades map each kind to their own status (gRPC: one interceptor);
/// the message is for the person who sent the request and says what to change.
/// </summary>
public abstract class OperationException(string message) : Exception(message);

/// <summary>The spec (or the request that carries it) is malformed; nothing was written. Every problem is listed.</summary>
public sealed class InvalidSpecException : OperationException
{
    public InvalidSpecException(IReadOnlyList<string> errors)
        : base("invalid microvm spec: " + string.Join("; ", errors))
    {
        Errors = errors;
    }

    public IReadOnlyList<string> Errors { get; }
}

/// <summary>A request argument (not the spec) is missing or malformed, e.g. neither id nor uid given.</summary>
public sealed class InvalidRequestException(string message) : OperationException(message);

/// <summary>No MicroVM matches the id/namespace/uid given.</summary>
public sealed class MicroVmNotFoundException(string message) : OperationException(message);

/// <summary>The request is well-formed but the MicroVM's state does not allow it (pause a stopped VM, anything while deleting).</summary>
public sealed class FailedPreconditionException(string message) : OperationException(message);

/// <summary>The node can never hold the VM (more memory or vCPUs than it has allocatable even when empty); nothing was written.</summary>
public sealed class ResourceExhaustedException(string message) : OperationException(message);

using Hypercore.Operations;

namespace Hypercore.Snapshots;

/// <summary>A snapshot of that name exists (or is being taken) already.</summary>
public sealed class SnapshotExistsException(string message) : OperationException(message);

/// <summary>No snapshot of that name (in a namespace the caller may see).</summary>
public sealed class SnapshotNotFoundException(string message) : OperationException(message);

/// <summary>The hypervisor failed while saving the VM; the VM is left as it was and no snapshot is kept.</summary>
public sealed class SnapshotFailedException(string message, Exception? inner = null) : OperationException(message)
{
    public Exception? Cause { get; } = inner;
}

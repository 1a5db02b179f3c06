using Hypercore.HostAccess;

namespace Hypercore.Drivers.Vmm;

/// <summary>
/// A driver's own hypervisor binary, found as <see cref="BinaryLocator.Resolve(string)"/> finds it, without walking PATH
/// again on every call. Issue 15 (cpu10): the reconciler asks the driver's availability on every pass (polls included)
/// and the driver resolves the binary again on every start; with a bare name each walk was one stat per PATH directory
/// until the hit (4.3 % of the AOT daemon's samples under Creates, cpu8).
/// </summary>
/// <remarks>
/// What is kept is the last path found, with the PATH value and the configured name it was found for. A call gives it
/// back only while (1) the configured name and PATH are the same, (2) the file is still there and executable (one stat,
/// every call: a binary removed or made non-executable is seen at once, the full walk then runs and reports what it
/// tried) and (3) the walk that found it is less than <see cref="RewalkAfter"/> old, so a binary installed since in an
/// earlier PATH directory is used within that time. A configured path (with a '/') is one stat already and is not kept.
/// Nothing is kept after a miss: a missing binary is looked for again on every call. The modification time is never
/// kept: each call's comes from that call's stat.
/// </remarks>
public sealed class DriverBinary(TimeProvider time)
{
    /// <summary>How long a walk's answer is given back before PATH is walked again.</summary>
    public static readonly TimeSpan RewalkAfter = TimeSpan.FromSeconds(1);

    private Found? _found;

    /// <summary>
    /// The resolved path or null, the paths tried (those of the walk that found it, on a kept answer), and the modification
    /// time of the file found from the stat that checked it on this call (default when nothing was found): what
    /// <see cref="BinaryVersionCache"/> is keyed on, so a check stats the binary once (issue 15, vcache16).
    /// </summary>
    public (string? Path, IReadOnlyList<string> Tried, HostFileTime Modified) Resolve(string configured)
    {
        HostFileTime modified;
        if (configured.Contains('/', StringComparison.Ordinal))
        {
            var (full, triedPath) = BinaryLocator.Resolve(configured, out modified);
            return (full, triedPath, modified);
        }

        var pathVariable = Environment.GetEnvironmentVariable("PATH");
        if (Volatile.Read(ref _found) is { } found && found.Configured == configured && found.PathVariable == pathVariable &&
            time.GetElapsedTime(found.WalkedAt) < RewalkAfter && HostExecutable.Is(found.Path, out modified))
        {
            return (found.Path, found.Tried, modified);
        }

        var walkedAt = time.GetTimestamp();
        var (path, tried) = BinaryLocator.Resolve(configured, out modified);
        Volatile.Write(ref _found, path is null ? null : new Found(configured, pathVariable, path, tried, walkedAt));
        return (path, tried, modified);
    }

    private sealed record Found(string Configured, string? PathVariable, string Path, IReadOnlyList<string> Tried, long WalkedAt);
}

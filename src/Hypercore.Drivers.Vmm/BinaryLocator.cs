using Hypercore.HostAccess;

namespace Hypercore.Drivers.Vmm;

/// <summary>Finds an executable the way a shell would, and remembers every path it tried for the error message.</summary>
public static class BinaryLocator
{
    private static readonly Lock CandidatesLock = new();

    /// <summary>Per bare name: the PATH value it was built for and the candidate paths in PATH order.</summary>
    private static readonly Dictionary<string, (string PathVariable, string[] Candidates)> CandidatesByName = new(StringComparer.Ordinal);

    /// <summary>
    /// Resolves <paramref name="configured"/>: a value with a '/' is taken as a path; a bare name is looked up in
    /// each PATH directory. Returns the resolved path or null, and the paths tried in order.
    /// </summary>
    /// <remarks>
    /// Every call looks at every candidate again (a binary installed or removed since is seen at once); only the list
    /// of candidate paths is kept per name and PATH value, and each is asked with one stat (issue 15: the reconciler
    /// asks the driver's availability on every pass, and this walk was 5 % of the AOT daemon's samples under Creates).
    /// A driver's own hypervisor binary goes through <see cref="DriverBinary"/>, which keeps the path found between walks.
    /// </remarks>
    public static (string? Path, IReadOnlyList<string> Tried) Resolve(string configured) => Resolve(configured, out _);

    /// <summary>
    /// <see cref="Resolve(string)"/>, and the modification time of the file found, from the stat that found it (default
    /// when nothing was found).
    /// </summary>
    public static (string? Path, IReadOnlyList<string> Tried) Resolve(string configured, out HostFileTime modified)
    {
        if (configured.Contains('/', StringComparison.Ordinal))
        {
            var full = Path.GetFullPath(configured);
            return (HostExecutable.Is(full, out modified) ? full : null, [full]);
        }

        if (WalkCounter.Value is { } walks)
        {
            Interlocked.Increment(ref walks.Value);
        }

        var candidates = Candidates(configured);
        for (var i = 0; i < candidates.Length; i++)
        {
            if (HostExecutable.Is(candidates[i], out modified))
            {
                return (candidates[i], candidates[..(i + 1)]); // a copy: the kept list is shared
            }
        }

        modified = default;
        return (null, [.. candidates]);
    }

    /// <summary>
    /// Tests count PATH walks (bare names) with <see cref="CountWalks"/>. The count follows the async flow that started
    /// it, not a thread: a [ThreadStatic] counter read after an await read whichever pool thread the continuation ran on
    /// (CI saw 3 walks that were another thread's).
    /// </summary>
    private static readonly AsyncLocal<System.Runtime.CompilerServices.StrongBox<int>?> WalkCounter = new();

    /// <summary>From now on, counts the walks made by this flow and the calls it awaits; read the box's Value.</summary>
    internal static System.Runtime.CompilerServices.StrongBox<int> CountWalks() => WalkCounter.Value = new System.Runtime.CompilerServices.StrongBox<int>();

    /// <summary>"firecracker binary not found: tried /usr/bin/firecracker, ..."</summary>
    public static string NotFoundMessage(string what, IReadOnlyList<string> tried) =>
        $"{what} binary not found: tried {(tried.Count == 0 ? "(no PATH entries)" : string.Join(", ", tried))}";

    /// <summary>Exists after following links, is not a directory, and has any execute bit (one stat).</summary>
    public static bool IsExecutable(string path) => HostExecutable.Is(path);

    private static string[] Candidates(string name)
    {
        var pathVariable = Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        lock (CandidatesLock)
        {
            if (CandidatesByName.TryGetValue(name, out var known) && known.PathVariable == pathVariable)
            {
                return known.Candidates;
            }
        }

        var candidates = pathVariable.Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Distinct(StringComparer.Ordinal)
            .Select(dir => Path.Combine(dir, name))
            .ToArray();
        lock (CandidatesLock)
        {
            CandidatesByName[name] = (pathVariable, candidates);
        }

        return candidates;
    }
}

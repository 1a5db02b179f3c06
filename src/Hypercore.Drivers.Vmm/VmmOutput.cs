using System.Collections.Concurrent;
using Hypercore.HostAccess;

namespace Hypercore.Drivers.Vmm;

/// <summary>What a VMM printed, for error messages a person can act on.</summary>
public static class VmmOutput
{
    /// <summary>The last five non-empty lines of a log file joined with " | ", or "(no output)".</summary>
    public static string Tail(string file)
    {
        try
        {
            var tail = string.Join(" | ", File.ReadAllLines(file).TakeLast(5).Select(l => l.Trim()).Where(l => l.Length > 0));
            return tail.Length == 0 ? "(no output)" : tail;
        }
        catch (IOException)
        {
            return "(no output)";
        }
    }
}

/// <summary>
/// The first line of <c>&lt;binary&gt; --version</c>, run once per binary file (cached by path and modification time),
/// so availability checks stay cheap.
/// </summary>
/// <remarks>
/// The caller gives the modification time from the stat that found the binary on this call (<see cref="DriverBinary"/>):
/// the cache stats nothing itself. Issue 15 (vcache16): its own <c>File.GetLastWriteTimeUtc</c> was a second path lookup
/// of the same file on every availability check (~0.9 % of vistarad's samples under the Stopped load). A binary replaced
/// in place has a new modification time at the next check, and its version is read again.
/// </remarks>
public sealed class BinaryVersionCache(string fallbackName)
{
    /// <summary>The runs in flight, by binary as checked; a run leaves when it ends (each cache keeps its own answer).</summary>
    private static readonly ConcurrentDictionary<(string Path, HostFileTime Modified), Lazy<Task<CommandResult>>> Running = new();

    private readonly Lock _lock = new();
    private (string Path, HostFileTime Modified, string Version)? _cached;

    /// <summary>The version line, or null when the binary does not run.</summary>
    /// <param name="path">The binary.</param>
    /// <param name="modified">Its modification time, from the stat that checked it.</param>
    /// <param name="ct">Cancels the --version run.</param>
    public async Task<string?> GetAsync(string path, HostFileTime modified, CancellationToken ct)
    {
        if (Cached(path, modified) is { } known)
        {
            return known;
        }

        var result = await RunSharedAsync(path, modified).WaitAsync(ct);
        if (!result.Succeeded)
        {
            return null;
        }

        var version = result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? fallbackName;
        lock (_lock)
        {
            _cached = (path, modified, version);
        }

        return version;
    }

    /// <summary>
    /// One <c>--version</c> run per binary at a time, whoever asks: not cancelled by one caller giving up (each waits
    /// with its own token), bounded by its own 10 s timeout.
    /// </summary>
    private static Task<CommandResult> RunSharedAsync(string path, HostFileTime modified)
    {
        var key = (path, modified);
        var run = Running.GetOrAdd(key, static k => new Lazy<Task<CommandResult>>(() => RunAndLeaveAsync(k)));
        return run.Value;

        static async Task<CommandResult> RunAndLeaveAsync((string Path, HostFileTime Modified) key)
        {
            try
            {
                return await HostProcess.RunAsync(key.Path, ["--version"], TimeSpan.FromSeconds(10), CancellationToken.None);
            }
            finally
            {
                Running.TryRemove(key, out _);
            }
        }
    }

    /// <summary>
    /// The version line already read for the binary as it is now (same path, same modification time as
    /// <paramref name="modified"/>, the caller's stat of it), else null.
    /// </summary>
    public string? Cached(string path, HostFileTime modified)
    {
        lock (_lock)
        {
            return _cached is { } v && v.Path == path && v.Modified == modified ? v.Version : null;
        }
    }
}

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
public sealed class BinaryVersionCache(string fallbackName)
{
    private readonly Lock _lock = new();
    private (string Path, DateTime Modified, string Version)? _cached;

    /// <summary>The version line, or null when the binary does not run.</summary>
    public async Task<string?> GetAsync(string path, CancellationToken ct)
    {
        var modified = File.GetLastWriteTimeUtc(path);
        if (Cached(path, modified) is { } known)
        {
            return known;
        }

        var result = await HostProcess.RunAsync(path, ["--version"], TimeSpan.FromSeconds(10), ct);
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

    /// <summary>The version line already read for the binary as it is now (same path, same modification time), else null.</summary>
    public string? Cached(string path) => Cached(path, File.GetLastWriteTimeUtc(path));

    private string? Cached(string path, DateTime modified)
    {
        lock (_lock)
        {
            return _cached is { } v && v.Path == path && v.Modified == modified ? v.Version : null;
        }
    }
}

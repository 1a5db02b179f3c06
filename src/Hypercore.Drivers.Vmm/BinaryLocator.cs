namespace Hypercore.Drivers.Vmm;

/// <summary>Finds an executable the way a shell would, and remembers every path it tried for the error message.</summary>
public static class BinaryLocator
{
    /// <summary>
    /// Resolves <paramref name="configured"/>: a value with a '/' is taken as a path; a bare name is looked up in
    /// each PATH directory. Returns the resolved path or null, and the paths tried in order.
    /// </summary>
    public static (string? Path, IReadOnlyList<string> Tried) Resolve(string configured)
    {
        if (configured.Contains('/', StringComparison.Ordinal))
        {
            var full = Path.GetFullPath(configured);
            return (IsExecutable(full) ? full : null, [full]);
        }

        var tried = new List<string>();
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .Split(':', StringSplitOptions.RemoveEmptyEntries);
        foreach (var dir in dirs.Distinct(StringComparer.Ordinal))
        {
            var candidate = Path.Combine(dir, configured);
            tried.Add(candidate);
            if (IsExecutable(candidate))
            {
                return (candidate, tried);
            }
        }

        return (null, tried);
    }

    /// <summary>"firecracker binary not found: tried /usr/bin/firecracker, ..."</summary>
    public static string NotFoundMessage(string what, IReadOnlyList<string> tried) =>
        $"{what} binary not found: tried {(tried.Count == 0 ? "(no PATH entries)" : string.Join(", ", tried))}";

    public static bool IsExecutable(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                return false;
            }

            const UnixFileMode anyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            return (File.GetUnixFileMode(path) & anyExecute) != 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}

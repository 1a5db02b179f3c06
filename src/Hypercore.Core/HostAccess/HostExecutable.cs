namespace Hypercore.HostAccess;

/// <summary>Whether a path names a program the host could run (any execute bit, after following links).</summary>
public static class HostExecutable
{
    /// <summary>
    /// True when <paramref name="path"/> exists after following links, is not a directory, and has any execute bit:
    /// what <c>FileInfo.Exists</c> and <c>File.GetUnixFileMode</c> answered together, in one stat(2) and without
    /// normalising the path (issue 15: drivers look their binary up on PATH on every availability check, i.e. every
    /// reconcile pass, and most PATH entries miss).
    /// </summary>
    public static bool Is(string path) => HostFiles.IsExecutable(path, out _);

    /// <summary>
    /// <see cref="Is(string)"/>, and the modification time of the file it names (after following links) from the same
    /// stat(2). Issue 15 (vcache16): a driver keys the cached <c>--version</c> of its binary on this, so an availability
    /// check makes one path lookup, not a second stat for the time.
    /// </summary>
    /// <param name="modified">The file's st_mtim when the answer is true; default otherwise.</param>
    public static bool Is(string path, out HostFileTime modified) => HostFiles.IsExecutable(path, out modified);
}

/// <summary>
/// A file's modification time as stat(2) gives it (st_mtim: seconds and nanoseconds since the epoch), exact and with no
/// conversion that could fail; compared for equality only, to tell a file changed in place.
/// </summary>
public readonly record struct HostFileTime(long Seconds, long Nanoseconds);

/// <summary>The stat behind <see cref="HostExecutable"/>.</summary>
internal static partial class HostFiles
{
    private const uint AnyExecute = 0x49; // 0111: user, group or other may execute

    public static bool IsExecutable(string path, out HostFileTime modified)
    {
        Span<byte> buffer = stackalloc byte[StatSize];
        if (!StatPath(path, followLinks: true, buffer))
        {
            modified = default;
            return false;
        }

        var mode = ModeOf(buffer);
        if (KindOf(mode) == HostFileKind.Directory || (mode & AnyExecute) == 0)
        {
            modified = default;
            return false;
        }

        modified = ModifiedOf(buffer);
        return true;
    }
}

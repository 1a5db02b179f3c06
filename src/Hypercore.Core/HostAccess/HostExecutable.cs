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
    public static bool Is(string path) => HostFiles.IsExecutable(path);
}

/// <summary>The stat behind <see cref="HostExecutable"/>.</summary>
internal static partial class HostFiles
{
    private const uint AnyExecute = 0x49; // 0111: user, group or other may execute

    public static bool IsExecutable(string path) =>
        Mode(path, followLinks: true) is { } mode && KindOf(mode) != HostFileKind.Directory && (mode & AnyExecute) != 0;
}

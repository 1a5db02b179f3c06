using Hypercore.HostAccess;

namespace Hypercore.Consoles;

/// <summary>
/// A VM's console log and its one rotated part: <c>console.log</c> (being written by the hypervisor) and
/// <c>console.log.1</c> (the previous part). Rotation is copy-truncate, so the hypervisor keeps writing to the file it
/// opened and the daemon is never in the console's data path: the hypervisors open the file in append mode (QEMU
/// <c>append=on</c>, the detached VMMs' <c>&gt;&gt;</c> redirection), so after the truncation their next write lands at
/// the new end, offset 0, instead of leaving a hole.
/// </summary>
public static class ConsoleLogFiles
{
    public const string RotatedSuffix = ".1";

    public static string Rotated(string path) => path + RotatedSuffix;

    /// <summary>Gates shared by every VM's log, picked by the VM directory's name (its uid).</summary>
    private static readonly Lock[] Gates = [.. Enumerable.Range(0, 64).Select(_ => new Lock())];

    /// <summary>Rotations this process made, by <see cref="Key"/>: the log's full path and how many.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string Path, long Count)> Rotations =
        new(StringComparer.Ordinal);

    /// <summary>
    /// The lock a rotation of <paramref name="path"/> holds from its copy to its rename and count. A reader in this
    /// process that reads <see cref="RotationCount"/> and the log while holding it sees either no rotation or a finished
    /// one, never a log truncated under a read it already started (CI of af81fa0: <c>vis logs -f</c>, held back by its
    /// client, went on reading the truncated log at its old offset, then read the rest of the old part from <c>.1</c>
    /// and printed lines out of order). Chosen by the VM directory's name, the same whichever root path the caller was
    /// given; hold it only for reads and stat calls, never across an await.
    /// </summary>
    public static Lock RotationGate(string path) =>
        Gates[(int)((uint)string.GetHashCode(Key(path), StringComparison.Ordinal) % (uint)Gates.Length)];

    /// <summary>
    /// How many times this process has rotated <paramref name="path"/>; read under <see cref="RotationGate"/>. A reader
    /// that saw n and now sees n + 1 finds the rest of what it was reading in <c>.1</c> at the same offsets; n + 2 or
    /// more means <c>.1</c> holds a later part than its own (CI of f3fe14e: a reader that slept through two rotations
    /// read the later part at its own offset and joined half a line to another), so <c>.1</c> is new to it from its start.
    /// .1's size and write time cannot tell rotations apart: the kernel stamps files with a coarse clock.
    /// </summary>
    public static long RotationCount(string path) => Rotations.TryGetValue(Key(path), out var entry) ? entry.Count : 0;

    /// <summary>
    /// Where a reader goes on after reading <paramref name="path"/> up to <paramref name="offset"/> when it had seen
    /// <paramref name="seenRotations"/> rotations, the log being <paramref name="length"/> bytes now. Call it under
    /// <see cref="RotationGate"/>, with the length taken under it too. The one statement of the rule both readers follow
    /// (it went wrong twice in CI when each had its own copy):
    /// <list type="bullet">
    /// <item>no rotation, not shorter: the log from <paramref name="offset"/>;</item>
    /// <item>no rotation, shorter: replaced in place (a restarted VM's fresh log), the log from 0, the cut line dropped;</item>
    /// <item>one rotation: the rest of the reader's part is in <c>.1</c> at the same offsets, then the log from 0;</item>
    /// <item>more: <c>.1</c> is a later part, all new to the reader, then the log from 0; the rest of the reader's own
    /// part is gone, so a line it had half read is dropped, never joined to another.</item>
    /// </list>
    /// Fewer rotations than seen happens only when the VM's counts were dropped (<see cref="ForgetRemovedLogs"/>):
    /// read as none.
    /// </summary>
    public static ConsoleResume Resume(string path, long seenRotations, long offset, long length)
    {
        var count = RotationCount(path);
        return Math.Max(0, count - seenRotations) switch
        {
            0 when length >= offset => new(count, null, offset, CutLine: false),
            0 => new(count, null, 0, CutLine: true),
            1 => new(count, offset, 0, CutLine: false),
            _ => new(count, 0, 0, CutLine: true),
        };
    }

    /// <summary>
    /// Opens a part of a VM's console log for reading, never through a link and only if it is a regular file with one
    /// link (<see cref="NotAPlainFileException"/> otherwise): the VM's directory may belong to the VMM's user, and the
    /// daemon reading as root must not hand out the host file a planted <c>console.log.1 -&gt; /etc/shadow</c> names.
    /// Null when there is no such file.
    /// </summary>
    public static FileStream? OpenRead(string path) =>
        HostFiles.OpenPlainFile(path, FileAccess.Read) is { } handle ? new FileStream(handle, FileAccess.Read, 4096) : null;

    /// <summary>Drops the counts of logs whose VM directory is gone (a deleted VM); the rotator calls it on its full walks.</summary>
    public static void ForgetRemovedLogs()
    {
        foreach (var (key, entry) in Rotations)
        {
            lock (RotationGate(entry.Path))
            {
                if (!Directory.Exists(Path.GetDirectoryName(entry.Path)))
                {
                    Rotations.TryRemove(key, out _);
                }
            }
        }
    }

    /// <summary>"&lt;VM directory name&gt;/&lt;file name&gt;": the same for every root path a caller may have been given.</summary>
    private static string Key(string path)
    {
        var trimmed = Path.TrimEndingDirectorySeparator(path);
        return Path.GetFileName(Path.GetDirectoryName(trimmed)) + "/" + Path.GetFileName(trimmed);
    }

    /// <summary>
    /// When <paramref name="path"/> holds more than <paramref name="maxBytes"/>: copies it to <c>path.1</c> (replacing
    /// the previous part) and truncates it to zero. Returns the size rotated away, or 0 when nothing was done.
    /// </summary>
    /// <remarks>
    /// Readers (<c>ConsoleLogStreamer</c>, <c>ConsoleTail</c>) see a rotation whole: the copy into a temporary file,
    /// the truncation, the rename over <c>.1</c> and <see cref="RotationCount"/> all happen under
    /// <see cref="RotationGate"/>, which they hold while they read. What the guest writes between the end of the copy
    /// and the truncation (a few microseconds) is lost: the price of not standing between the hypervisor and its file.
    /// </remarks>
    public static long RotateIfOver(string path, long maxBytes)
    {
        FileInfo info = new(path);
        if (!info.Exists || info.Length <= maxBytes || (info.Attributes & FileAttributes.ReparsePoint) != 0)
        {
            return 0; // a link someone planted in a VM's directory: never followed (the open below checks again)
        }

        var temp = path + ".rotating";
        lock (RotationGate(path))
        {
            using var handle = OpenToRotate(path);
            if (handle is null)
            {
                return 0;
            }

            using var source = new FileStream(handle, FileAccess.ReadWrite, 4096);
            long rotated;
            // The VM's directory may belong to the VMM's user (qemu-user): a planted temp link is removed, never written through.
            File.Delete(temp);
            using (var copy = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.Read))
            {
                source.CopyTo(copy);
                rotated = copy.Length;
            }

            source.SetLength(0);
            File.Move(temp, Rotated(path), overwrite: true);
            var full = Path.GetFullPath(path);
            Rotations.AddOrUpdate(Key(path), (full, 1), (_, before) => (full, before.Count + 1));
            return rotated;
        }
    }

    /// <summary>The log opened read-write for a rotation; null when it is gone or is not a plain file (never rotated through a link).</summary>
    private static Microsoft.Win32.SafeHandles.SafeFileHandle? OpenToRotate(string path)
    {
        try
        {
            return HostFiles.OpenPlainFile(path, FileAccess.ReadWrite);
        }
        catch (NotAPlainFileException)
        {
            return null;
        }
    }
}

/// <summary>
/// <see cref="ConsoleLogFiles.Resume"/>'s answer: the rotation count to remember, where to read in <c>.1</c> first
/// (null: not at all), where to read the current log from, and whether the line being assembled was cut off.
/// </summary>
public readonly record struct ConsoleResume(long Rotations, long? RotatedFrom, long From, bool CutLine);

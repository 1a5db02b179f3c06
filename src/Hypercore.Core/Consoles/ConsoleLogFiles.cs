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

    /// <summary>
    /// The lock a rotation of <paramref name="path"/> holds from its copy to its rename. A reader in this process that
    /// looks at <c>.1</c> and reads the log while holding it sees either no rotation or a finished one, never a log
    /// truncated under a read it already started (CI of af81fa0: <c>vis logs -f</c>, held back by its client, went on
    /// reading the truncated log at its old offset, then read the rest of the old part from <c>.1</c> and printed lines
    /// out of order). Chosen by the VM directory's name, the same whichever root path the caller was given; hold it
    /// only for reads and stat calls, never across an await.
    /// </summary>
    public static Lock RotationGate(string path)
    {
        var vm = Path.GetFileName(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(path))) ?? "";
        return Gates[(int)((uint)string.GetHashCode(vm, StringComparison.Ordinal) % (uint)Gates.Length)];
    }

    /// <summary>
    /// When <paramref name="path"/> holds more than <paramref name="maxBytes"/>: copies it to <c>path.1</c> (replacing
    /// the previous part) and truncates it to zero. Returns the size rotated away, or 0 when nothing was done.
    /// </summary>
    /// <remarks>
    /// The order matters to readers (<c>ConsoleLogStreamer</c>): the copy is made in a temporary file, then the log is
    /// truncated, and only then is the copy renamed to <c>.1</c>; a reader that sees <c>.1</c> change knows the
    /// truncation already happened and that the bytes it had not read yet are in <c>.1</c> at the same offsets. What
    /// the guest writes between the end of the copy and the truncation (a few microseconds) is lost: the price of not
    /// standing between the hypervisor and its file. All three steps run under <see cref="RotationGate"/>.
    /// </remarks>
    public static long RotateIfOver(string path, long maxBytes)
    {
        FileInfo info = new(path);
        if (!info.Exists || info.Length <= maxBytes || (info.Attributes & FileAttributes.ReparsePoint) != 0)
        {
            return 0; // never follow a link someone planted in a VM's directory
        }

        var temp = path + ".rotating";
        lock (RotationGate(path))
        {
            using var source = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
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
            return rotated;
        }
    }
}

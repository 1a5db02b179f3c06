using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using SQLitePCL;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// The writer's WAL file, opened by the store itself so that a thread other than the writer can make its commits
/// durable with <c>fdatasync</c> (issue 15, fourteenth pass): the writer connection runs with <c>synchronous=NORMAL</c>
/// (SQLite writes each commit's frames and syncs nothing at COMMIT), and the store acknowledges a commit only after a
/// sync that started after it. fdatasync, not the <c>fsync</c> the bundled SQLite calls: the WAL's data and its size,
/// without writing the inode's times each commit.
/// </summary>
/// <remarks>
/// fdatasync writes back the file's dirty pages whichever descriptor wrote them, so a descriptor of our own is enough,
/// provided it is the file SQLite writes: <see cref="TryOpen"/> checks that SQLite's own descriptor of the WAL and ours
/// name the same file (neither deleted) in /proc/self/fd. The WAL keeps its inode for the life of the writer connection
/// (a checkpoint's TRUNCATE and <c>journal_size_limit</c> shorten it in place; only the last connection's close
/// removes it). The directory is fsynced once at open: SQLite fsyncs it only at the WAL's first sync, which with
/// NORMAL is the first checkpoint, and a file whose name is not on disk is lost with everything in it.
/// </remarks>
internal sealed partial class WalFile : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly int _fd;

    private WalFile(SafeFileHandle handle)
    {
        _handle = handle;
        _fd = (int)handle.DangerousGetHandle();
    }

    /// <summary>
    /// Opens <paramref name="walPath"/> when it is the file SQLite's writer connection <paramref name="db"/> writes its
    /// WAL to; null (with the reason) when that cannot be shown, and the caller keeps SQLite's own sync at COMMIT.
    /// </summary>
    public static WalFile? TryOpen(sqlite3 db, string walPath, out string? why)
    {
        why = null;
        if (!OperatingSystem.IsLinux())
        {
            why = "not Linux (fdatasync and /proc/self/fd are used)";
            return null;
        }

        var sqliteFd = SqliteWalDescriptor(db);
        if (sqliteFd < 0)
        {
            why = "SQLite's WAL file handle was not found";
            return null;
        }

        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(walPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            why = $"cannot open {walPath}: {ex.Message}";
            return null;
        }

        var file = new WalFile(handle);
        var ours = LinkOf(file._fd);
        var theirs = LinkOf(sqliteFd);
        if (ours is null || ours != theirs || ours.EndsWith(" (deleted)", StringComparison.Ordinal))
        {
            file.Dispose();
            why = $"SQLite's WAL descriptor ({theirs ?? "unreadable"}) is not the file opened ({ours ?? "unreadable"})";
            return null;
        }

        var directory = Path.GetDirectoryName(walPath)!;
        var rc = SyncDirectory(directory);
        if (rc != 0)
        {
            file.Dispose();
            why = $"fsync of the directory {directory} failed: {Marshal.GetPInvokeErrorMessage(rc)} (errno {rc})";
            return null;
        }

        return file;
    }

    /// <summary>fdatasync of the WAL: 0, or the errno it failed with (EINTR is retried).</summary>
    public int Sync()
    {
        while (true)
        {
            if (FDataSync(_fd) == 0)
            {
                return 0;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR)
            {
                return errno;
            }
        }
    }

    public void Dispose() => _handle.Dispose();

    /// <summary>
    /// The descriptor of SQLite's WAL file on this connection (-1: not found). SQLITE_FCNTL_JOURNAL_POINTER gives the WAL's
    /// sqlite3_file; the unix VFS's unixFile starts { pMethod; pVfs; pInode; int h; } (unchanged since SQLite 3.7). A
    /// wrong reading never passes <see cref="TryOpen"/>'s check, which compares the file it names with ours.
    /// </summary>
    private static unsafe int SqliteWalDescriptor(sqlite3 db)
    {
        nint file = 0;
        int rc;
        fixed (byte* main = "main"u8)
        {
            rc = sqlite3_file_control(db.DangerousGetHandle(), main, SqliteFcntlJournalPointer, &file);
        }

        if (rc != raw.SQLITE_OK || file == 0 || *(nint*)file == 0)
        {
            return -1; // no WAL open (its methods pointer is null while closed)
        }

        return *(int*)(file + (3 * sizeof(nint)));
    }

    private static string? LinkOf(int fd)
    {
        try
        {
            return new FileInfo($"/proc/self/fd/{fd}").LinkTarget;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static int SyncDirectory(string directory)
    {
        var fd = Open(directory, ORdOnly | OCloexec, 0);
        if (fd < 0)
        {
            return Marshal.GetLastPInvokeError();
        }

        var rc = FSync(fd) == 0 ? 0 : Marshal.GetLastPInvokeError();
        _ = Close(fd); // read-only: nothing to lose at close
        return rc;
    }

    private const int SqliteFcntlJournalPointer = 28; // SQLITE_FCNTL_JOURNAL_POINTER
    private const int EINTR = 4;
    private const int ORdOnly = 0;
    private const int OCloexec = 0x80000; // x86-64 and arm64 Linux (O_DIRECTORY differs between them: not used)

    // As UidSource's getrandom: libc through LibraryImport, no reflection (Native AOT).
    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FDataSync(int fd);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FSync(int fd);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("e_sqlite3")]
    private static unsafe partial int sqlite3_file_control(nint db, byte* name, int op, void* arg);
}

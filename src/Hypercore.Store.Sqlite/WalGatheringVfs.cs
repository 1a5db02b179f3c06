using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// A VFS over SQLite's own default one ("unix") that writes a commit's WAL frames with one write(2) instead of two per
/// frame (issue 15, twenty-first pass). SQLite appends each frame as a 24-byte header and then the page, each its own
/// pwrite64: ~70 system calls for a commit of 35 frames, which on this kind of host cost 250–350 µs of CPU against
/// ~100 µs for the same bytes in one call (a C program, bench/NOTES.md s21).
/// <para>
/// Only a connection that names this VFS uses it (the store's writer and its checkpointer, through a URI filename).
/// Only WAL files gather: their writes that continue the previous one are copied into a buffer (at most
/// <see cref="MaxGather"/> bytes), and the buffer is written out, in one call per <see cref="MaxWriteCall"/> bytes and
/// before anything else is done to the file, when a write does not continue it, and before every read, sync, truncate,
/// size, lock or file control of the WAL, and its close. So the file receives the same bytes at the same offsets in the
/// same order, only in fewer calls, and every byte is in the file before the fsync that makes a commit durable (the
/// store runs <c>synchronous = FULL</c>: SQLite syncs the WAL before the commit is published in the wal-index).
/// </para>
/// <para>
/// A connection without a sync per commit (<c>synchronous = NORMAL</c>) publishes a commit in the wal-index without
/// touching the WAL again: for it, the main database file's shared-memory barrier (which SQLite calls between the two
/// copies of the wal-index header it writes, i.e. before the commit becomes visible) writes out that connection's WAL
/// buffer first. A failure there cannot be returned (the barrier returns nothing), and a published commit whose frames
/// are not in the file would be corruption: the process is ended instead, before any reader sees it, and the next open
/// recovers the WAL up to the last complete commit, which excludes the one that failed (never acknowledged).
/// </para>
/// Files other than the main database and its WAL (journals, temporary files) are the default VFS's own, unwrapped.
/// </summary>
internal static unsafe partial class WalGatheringVfs
{
    public const string Name = "hypercore-walgather";

    /// <summary>Most bytes gathered before they are written out (a commit of 250 frames).</summary>
    internal const int MaxGather = 1 << 20;

    /// <summary>
    /// Most bytes handed to the default VFS's xWrite at once: unixWrite keeps only the low 17 bits of a length
    /// (<c>seekAndWriteFd</c>: <c>nBuf &amp;= 0x1ffff</c>), so a write of 128 KiB or more would be cut short (and one of
    /// exactly 128 KiB reported as a full disk).
    /// </summary>
    internal const int MaxWriteCall = 0x1ffff;

    private const int FirstCapacity = 64 * 1024;
    private const int SqliteOk = 0;
    private const int OpenMainDb = 0x00000100; // SQLITE_OPEN_MAIN_DB
    private const int OpenWal = 0x00080000; // SQLITE_OPEN_WAL

    private static readonly Lock Gate = new();
    private static Vfs* s_vfs;
    private static Vfs* s_base;
    private static IoMethods* s_methods;

    // Main database files open through this VFS, by the name pointer SQLite gave xOpen, so the WAL it opens next for
    // the same connection finds its database (sqlite3_filename_database of the WAL's name is that pointer).
    private static readonly Dictionary<nint, nint> s_databases = [];

    private static long s_writeCalls;
    private static long s_gatheredWrites;

    /// <summary>write(2)s this VFS made to WAL files (tests and benchmarks).</summary>
    internal static long WriteCalls => Interlocked.Read(ref s_writeCalls);

    /// <summary>SQLite's writes to WAL files this VFS received (tests and benchmarks).</summary>
    internal static long GatheredWrites => Interlocked.Read(ref s_gatheredWrites);

    /// <summary>Registers the VFS once per process (not as the default). Returns <see cref="Name"/>.</summary>
    /// <exception cref="StoreException">SQLite has no default VFS to build on.</exception>
    public static string Register()
    {
        lock (Gate)
        {
            if (s_vfs is not null)
            {
                return Name;
            }

            var baseVfs = sqlite3_vfs_find(null);
            if (baseVfs is null)
            {
                throw new StoreException("SQLite has no default VFS");
            }

            var methods = (IoMethods*)NativeMemory.AllocZeroed((nuint)sizeof(IoMethods));
            methods->Version = 3;
            methods->Close = &Close;
            methods->Read = &Read;
            methods->Write = &Write;
            methods->Truncate = &Truncate;
            methods->Sync = &Sync;
            methods->FileSize = &FileSize;
            methods->Lock = &LockFile;
            methods->Unlock = &Unlock;
            methods->CheckReservedLock = &CheckReservedLock;
            methods->FileControl = &FileControl;
            methods->SectorSize = &SectorSize;
            methods->DeviceCharacteristics = &DeviceCharacteristics;
            methods->ShmMap = &ShmMap;
            methods->ShmLock = &ShmLock;
            methods->ShmBarrier = &ShmBarrier;
            methods->ShmUnmap = &ShmUnmap;
            methods->Fetch = &Fetch;
            methods->Unfetch = &Unfetch;

            var name = Encoding.UTF8.GetBytes(Name + "\0");
            var nativeName = (byte*)NativeMemory.Alloc((nuint)name.Length);
            name.CopyTo(new Span<byte>(nativeName, name.Length));

            var vfs = (Vfs*)NativeMemory.AllocZeroed((nuint)sizeof(Vfs));
            vfs->Version = 2;
            vfs->FileBytes = sizeof(GatherFile) + baseVfs->FileBytes;
            vfs->MaxPathname = baseVfs->MaxPathname;
            vfs->Name = nativeName;
            vfs->Open = &Open;
            vfs->Delete = &Delete;
            vfs->Access = &Access;
            vfs->FullPathname = &FullPathname;
            vfs->DlOpen = &DlOpen;
            vfs->DlError = &DlError;
            vfs->DlSym = &DlSym;
            vfs->DlClose = &DlClose;
            vfs->Randomness = &Randomness;
            vfs->Sleep = &Sleep;
            vfs->CurrentTime = &CurrentTime;
            vfs->GetLastError = &GetLastError;
            vfs->CurrentTimeInt64 = &CurrentTimeInt64;

            s_base = baseVfs;
            s_methods = methods;
            var rc = sqlite3_vfs_register(vfs, 0);
            if (rc != SqliteOk)
            {
                throw new StoreException($"SQLite refused to register the {Name} VFS (error {rc})");
            }

            s_vfs = vfs; // kept for the process's life: SQLite holds the pointer
            return Name;
        }
    }

    /// <summary>
    /// A URI filename for <paramref name="path"/> that opens it through this VFS (SQLite's URI syntax: every byte
    /// outside <c>A–Z a–z 0–9 / . _ - ~</c> percent-encoded, so no path character is read as a URI delimiter). Registers the
    /// VFS first.
    /// </summary>
    /// <exception cref="StoreException">The VFS could not be registered (see <see cref="Register"/>).</exception>
    public static string UriFor(string path)
    {
        Register();
        var builder = new StringBuilder("file:", path.Length + 32);
        foreach (var b in Encoding.UTF8.GetBytes(path))
        {
            if (b is (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'a' and <= (byte)'z') or (>= (byte)'0' and <= (byte)'9')
                or (byte)'/' or (byte)'.' or (byte)'_' or (byte)'-' or (byte)'~')
            {
                builder.Append((char)b);
            }
            else
            {
                builder.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return builder.Append("?vfs=").Append(Name).ToString();
    }

    // ---------------------------------------------------------------- the VFS

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Open(Vfs* vfs, byte* name, SqliteFile* target, int flags, int* outFlags)
    {
        var file = (GatherFile*)target;
        if ((flags & (OpenMainDb | OpenWal)) == 0)
        {
            // The default VFS's own file in the space SQLite allocated (it is larger than that file needs).
            return s_base->Open(s_base, name, target, flags, outFlags);
        }

        var real = (SqliteFile*)(file + 1);
        *file = default;
        file->Real = real;
        file->Gathers = (flags & OpenWal) != 0;
        real->Methods = null;
        var rc = s_base->Open(s_base, name, real, flags, outFlags);
        if (rc != SqliteOk)
        {
            if (real->Methods is not null)
            {
                real->Methods->Close(real);
            }

            return rc; // file->Methods stays null, as SQLite expects of a failed open
        }

        file->Methods = s_methods;
        lock (Gate)
        {
            if (file->Gathers)
            {
                var database = name is null ? null : sqlite3_filename_database(name);
                if (database is not null && s_databases.TryGetValue((nint)database, out var owner))
                {
                    file->Database = (GatherFile*)owner;
                    file->Database->Wal = file;
                }
            }
            else if (name is not null)
            {
                file->Name = name;
                s_databases[(nint)name] = (nint)file;
            }
        }

        return SqliteOk;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Delete(Vfs* vfs, byte* name, int syncDirectory) => s_base->Delete(s_base, name, syncDirectory);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Access(Vfs* vfs, byte* name, int flags, int* result) => s_base->Access(s_base, name, flags, result);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int FullPathname(Vfs* vfs, byte* name, int size, byte* output) => s_base->FullPathname(s_base, name, size, output);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void* DlOpen(Vfs* vfs, byte* name) => s_base->DlOpen(s_base, name);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void DlError(Vfs* vfs, int size, byte* message) => s_base->DlError(s_base, size, message);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void* DlSym(Vfs* vfs, void* handle, byte* symbol) => s_base->DlSym(s_base, handle, symbol);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void DlClose(Vfs* vfs, void* handle) => s_base->DlClose(s_base, handle);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Randomness(Vfs* vfs, int size, byte* output) => s_base->Randomness(s_base, size, output);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Sleep(Vfs* vfs, int microseconds) => s_base->Sleep(s_base, microseconds);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int CurrentTime(Vfs* vfs, double* now) => s_base->CurrentTime(s_base, now);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int GetLastError(Vfs* vfs, int size, byte* message) => s_base->GetLastError(s_base, size, message);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int CurrentTimeInt64(Vfs* vfs, long* now) => s_base->CurrentTimeInt64(s_base, now);

    // ---------------------------------------------------------------- the files

    /// <summary>Writes the gathered bytes out (one call per <see cref="MaxWriteCall"/> bytes); empty afterwards whatever the
    /// outcome.</summary>
    private static int WriteOut(GatherFile* file)
    {
        if (file->Length == 0)
        {
            return SqliteOk;
        }

        var length = file->Length;
        file->Length = 0;
        return WriteThrough(file, file->Buffer, length, file->Start);
    }

    /// <summary>Hands <paramref name="data"/> to the default VFS in calls of at most <see cref="MaxWriteCall"/> bytes.</summary>
    private static int WriteThrough(GatherFile* file, byte* data, int length, long offset)
    {
        for (var done = 0; done < length; done += MaxWriteCall)
        {
            Interlocked.Increment(ref s_writeCalls);
            var rc = file->Real->Methods->Write(file->Real, data + done, Math.Min(MaxWriteCall, length - done), offset + done);
            if (rc != SqliteOk)
            {
                return rc;
            }
        }

        return SqliteOk;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Close(void* handle)
    {
        var file = (GatherFile*)handle;
        var rc = WriteOut(file);
        lock (Gate)
        {
            if (file->Gathers)
            {
                if (file->Database is not null && file->Database->Wal == file)
                {
                    file->Database->Wal = null;
                }
            }
            else
            {
                if (file->Name is not null && s_databases.TryGetValue((nint)file->Name, out var open) && open == (nint)file)
                {
                    s_databases.Remove((nint)file->Name);
                }

                if (file->Wal is not null)
                {
                    file->Wal->Database = null;
                }
            }
        }

        var closed = file->Real->Methods->Close(file->Real);
        NativeMemory.Free(file->Buffer);
        file->Buffer = null;
        file->Capacity = 0;
        return rc != SqliteOk ? rc : closed;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Read(void* handle, void* buffer, int amount, long offset)
    {
        var file = (GatherFile*)handle;
        var rc = WriteOut(file);
        return rc != SqliteOk ? rc : file->Real->Methods->Read(file->Real, buffer, amount, offset);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Write(void* handle, byte* data, int amount, long offset)
    {
        var file = (GatherFile*)handle;
        if (!file->Gathers)
        {
            return file->Real->Methods->Write(file->Real, data, amount, offset);
        }

        Interlocked.Increment(ref s_gatheredWrites);
        if (file->Length > 0 && (offset != file->Start + file->Length || file->Length + (long)amount > MaxGather))
        {
            var rc = WriteOut(file);
            if (rc != SqliteOk)
            {
                return rc;
            }
        }

        if (amount > MaxGather)
        {
            return WriteThrough(file, data, amount, offset); // the buffer is empty here, so the order holds
        }

        var needed = file->Length + amount;
        if (needed > file->Capacity)
        {
            var capacity = Math.Max(FirstCapacity, file->Capacity);
            while (capacity < needed)
            {
                capacity *= 2;
            }

            capacity = Math.Min(capacity, MaxGather);
            var grown = Grow(file->Buffer, capacity);
            if (grown is null)
            {
                // No memory for gathering: the bytes so far, then this write, each as SQLite asked.
                var rc = WriteOut(file);
                return rc != SqliteOk ? rc : WriteThrough(file, data, amount, offset);
            }

            file->Buffer = grown;
            file->Capacity = capacity;
        }

        if (file->Length == 0)
        {
            file->Start = offset;
        }

        new ReadOnlySpan<byte>(data, amount).CopyTo(new Span<byte>(file->Buffer + file->Length, amount));
        file->Length += amount;
        return SqliteOk;
    }

    /// <summary>The buffer at <paramref name="capacity"/> bytes, or null when there is no memory for it (no exception
    /// may leave a callback of SQLite's).</summary>
    private static byte* Grow(byte* buffer, int capacity)
    {
        try
        {
            return (byte*)NativeMemory.Realloc(buffer, (nuint)capacity);
        }
        catch (OutOfMemoryException)
        {
            return null;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Truncate(void* handle, long size)
    {
        var file = (GatherFile*)handle;
        var rc = WriteOut(file);
        return rc != SqliteOk ? rc : file->Real->Methods->Truncate(file->Real, size);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Sync(void* handle, int flags)
    {
        var file = (GatherFile*)handle;
        var rc = WriteOut(file);
        return rc != SqliteOk ? rc : file->Real->Methods->Sync(file->Real, flags);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int FileSize(void* handle, long* size)
    {
        var file = (GatherFile*)handle;
        var rc = WriteOut(file);
        return rc != SqliteOk ? rc : file->Real->Methods->FileSize(file->Real, size);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int LockFile(void* handle, int level)
    {
        var file = (GatherFile*)handle;
        var rc = WriteOut(file);
        return rc != SqliteOk ? rc : file->Real->Methods->Lock(file->Real, level);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Unlock(void* handle, int level)
    {
        var file = (GatherFile*)handle;
        var rc = WriteOut(file);
        return rc != SqliteOk ? rc : file->Real->Methods->Unlock(file->Real, level);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int CheckReservedLock(void* handle, int* result)
    {
        var real = ((GatherFile*)handle)->Real;
        return real->Methods->CheckReservedLock(real, result);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int FileControl(void* handle, int op, void* argument)
    {
        var file = (GatherFile*)handle;
        var rc = WriteOut(file);
        return rc != SqliteOk ? rc : file->Real->Methods->FileControl(file->Real, op, argument);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int SectorSize(void* handle)
    {
        var real = ((GatherFile*)handle)->Real;
        return real->Methods->SectorSize(real);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int DeviceCharacteristics(void* handle)
    {
        var real = ((GatherFile*)handle)->Real;
        return real->Methods->DeviceCharacteristics(real);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ShmMap(void* handle, int page, int pageSize, int extend, void** mapped)
    {
        var real = ((GatherFile*)handle)->Real;
        return real->Methods->ShmMap(real, page, pageSize, extend, mapped);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ShmLock(void* handle, int offset, int count, int flags)
    {
        var file = (GatherFile*)handle;
        var rc = file->Wal is null ? SqliteOk : WriteOut(file->Wal);
        return rc != SqliteOk ? rc : file->Real->Methods->ShmLock(file->Real, offset, count, flags);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void ShmBarrier(void* handle)
    {
        var file = (GatherFile*)handle;
        if (file->Wal is not null && WriteOut(file->Wal) != SqliteOk)
        {
            Environment.FailFast($"{Name}: writing a commit's WAL frames failed after SQLite began publishing the commit; ending the process before any reader sees it (the next open recovers the WAL to the last complete commit)");
        }

        file->Real->Methods->ShmBarrier(file->Real);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ShmUnmap(void* handle, int deleteFlag)
    {
        var file = (GatherFile*)handle;
        var rc = file->Wal is null ? SqliteOk : WriteOut(file->Wal);
        return rc != SqliteOk ? rc : file->Real->Methods->ShmUnmap(file->Real, deleteFlag);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Fetch(void* handle, long offset, int amount, void** pointer)
    {
        var file = (GatherFile*)handle;
        var rc = WriteOut(file);
        return rc != SqliteOk ? rc : file->Real->Methods->Fetch(file->Real, offset, amount, pointer);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Unfetch(void* handle, long offset, void* pointer)
    {
        var real = ((GatherFile*)handle)->Real;
        return real->Methods->Unfetch(real, offset, pointer);
    }

    // ---------------------------------------------------------------- SQLite's structs (sqlite3.h, 64-bit layout)

    /// <summary>sqlite3_file: only its first member is SQLite's.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct SqliteFile
    {
        public IoMethods* Methods;
    }

    /// <summary>A main database or WAL file of this VFS: sqlite3_file's header, then the default VFS's file.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct GatherFile
    {
        public IoMethods* Methods;
        public SqliteFile* Real;
        public byte* Buffer;
        public long Start;
        public int Length;
        public int Capacity;
        public bool Gathers;
        public GatherFile* Database; // a WAL's main database file (this VFS's), when open
        public GatherFile* Wal; // a main database file's WAL, when open
        public byte* Name; // a main database file's name pointer (its key in s_databases)
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoMethods
    {
        public int Version;
        public delegate* unmanaged[Cdecl]<void*, int> Close;
        public delegate* unmanaged[Cdecl]<void*, void*, int, long, int> Read;
        public delegate* unmanaged[Cdecl]<void*, byte*, int, long, int> Write;
        public delegate* unmanaged[Cdecl]<void*, long, int> Truncate;
        public delegate* unmanaged[Cdecl]<void*, int, int> Sync;
        public delegate* unmanaged[Cdecl]<void*, long*, int> FileSize;
        public delegate* unmanaged[Cdecl]<void*, int, int> Lock;
        public delegate* unmanaged[Cdecl]<void*, int, int> Unlock;
        public delegate* unmanaged[Cdecl]<void*, int*, int> CheckReservedLock;
        public delegate* unmanaged[Cdecl]<void*, int, void*, int> FileControl;
        public delegate* unmanaged[Cdecl]<void*, int> SectorSize;
        public delegate* unmanaged[Cdecl]<void*, int> DeviceCharacteristics;
        public delegate* unmanaged[Cdecl]<void*, int, int, int, void**, int> ShmMap;
        public delegate* unmanaged[Cdecl]<void*, int, int, int, int> ShmLock;
        public delegate* unmanaged[Cdecl]<void*, void> ShmBarrier;
        public delegate* unmanaged[Cdecl]<void*, int, int> ShmUnmap;
        public delegate* unmanaged[Cdecl]<void*, long, int, void**, int> Fetch;
        public delegate* unmanaged[Cdecl]<void*, long, void*, int> Unfetch;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Vfs
    {
        public int Version;
        public int FileBytes;
        public int MaxPathname;
        public Vfs* Next;
        public byte* Name;
        public void* AppData;
        public delegate* unmanaged[Cdecl]<Vfs*, byte*, SqliteFile*, int, int*, int> Open;
        public delegate* unmanaged[Cdecl]<Vfs*, byte*, int, int> Delete;
        public delegate* unmanaged[Cdecl]<Vfs*, byte*, int, int*, int> Access;
        public delegate* unmanaged[Cdecl]<Vfs*, byte*, int, byte*, int> FullPathname;
        public delegate* unmanaged[Cdecl]<Vfs*, byte*, void*> DlOpen;
        public delegate* unmanaged[Cdecl]<Vfs*, int, byte*, void> DlError;
        public delegate* unmanaged[Cdecl]<Vfs*, void*, byte*, void*> DlSym;
        public delegate* unmanaged[Cdecl]<Vfs*, void*, void> DlClose;
        public delegate* unmanaged[Cdecl]<Vfs*, int, byte*, int> Randomness;
        public delegate* unmanaged[Cdecl]<Vfs*, int, int> Sleep;
        public delegate* unmanaged[Cdecl]<Vfs*, double*, int> CurrentTime;
        public delegate* unmanaged[Cdecl]<Vfs*, int, byte*, int> GetLastError;
        public delegate* unmanaged[Cdecl]<Vfs*, long*, int> CurrentTimeInt64;
        public void* SetSystemCall;
        public void* GetSystemCall;
        public void* NextSystemCall;
    }

    // The same library SQLitePCL.raw loads (as WalCheckpointer's imports).
    [LibraryImport("e_sqlite3")]
    private static partial Vfs* sqlite3_vfs_find(byte* name);

    [LibraryImport("e_sqlite3")]
    private static partial int sqlite3_vfs_register(Vfs* vfs, int makeDefault);

    [LibraryImport("e_sqlite3")]
    private static partial byte* sqlite3_filename_database(byte* name);
}

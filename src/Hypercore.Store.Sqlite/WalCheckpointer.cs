using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hypercore.Telemetry;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// Copies the WAL back into the database file off the writer thread (issue 15, seventh pass), and lets the WAL start
/// over with as short a stop of the writer as SQLite allows (eighth pass). SQLite's automatic checkpoint ran inside the
/// COMMIT of every write that took the WAL past 1,000 pages: page copies and an fsync of the database file on the
/// writer, before that commit's callers were answered and with every later write queued behind it.
/// </summary>
/// <remarks>
/// <para>
/// The automatic checkpoint is replaced by a WAL hook on the writer connection that records the WAL's size (frames)
/// after each commit. After the writer has answered a commit's callers it calls <see cref="AfterCommit"/>: when
/// <see cref="BackgroundFrames"/> frames are not yet copied, a thread of its own (started at the first need, so an idle
/// daemon has none) runs a PASSIVE checkpoint on its own connection, which never blocks the writer or a reader.
/// </para>
/// <para>
/// What SQLite does (wal.c): a write transaction starts the WAL over (<c>walRestartLog</c>) only when it began with
/// every frame copied (<c>nBackfill == mxFrame</c>, so it took read lock 0) and no reader holds a snapshot inside the
/// WAL (read locks 1..N free; if one does, it appends and the WAL grows on). A checkpoint fsyncs the database file only
/// when it copied up to the WAL's end as it stands when the copy ends; a pass overtaken by a commit copies pages without
/// that fsync. Under a steady stream of commits a background pass almost never reaches the end, so the writer has to
/// run the last one itself, between two of its transactions: it copies what the background left and fsyncs every page
/// copied since the database file's last fsync. In the seventh pass that was ~10 ms per restart (7.4 ms of it the
/// fsync), once per <see cref="WriterFrames"/>, every queued write behind it.
/// </para>
/// <para>
/// So, from <see cref="WriterFrames"/> − <see cref="CheapFrames"/> on, background passes run back to back and each one
/// overtaken by a commit fsyncs the database file itself (the copies are then on disk off the writer); a pass that did
/// reach the WAL's end lets the next transaction start it over with no checkpoint on the writer at all. From <see cref="WriterFrames"/> on the writer checkpoints itself, after answering its callers, only when the
/// background is idle and its last pass left at most <see cref="CheapFrames"/> frames (a short copy, a short fsync);
/// otherwise it asks for another pass and tries after its next commit, and at <see cref="HardFrames"/> it checkpoints
/// whatever is left (first waiting for a running background pass to end, at most <see cref="HardPointWait"/>: SQLite
/// refuses a second checkpoint while one runs). The next transaction starts the WAL over. Past four times <see cref="WriterFrames"/> (readers kept
/// a snapshot and no PASSIVE checkpoint could finish), a RESTART checkpoint, which waits for those readers up to the
/// busy timeout: a reader never makes the WAL grow without bound. The WAL file keeps its largest size when SQLite
/// writes it again from the start: <c>journal_size_limit</c> cuts it back to <see cref="HardFrames"/> at a restart
/// after a longer WAL, and after <see cref="IdleDelay"/> without a commit the checkpointer empties it (TRUNCATE, which
/// never waits: a writer or reader in the way means not now).
/// </para>
/// <para>
/// Durability does not change: a commit is durable when its frames are fsynced in the WAL (<c>synchronous=FULL</c>),
/// before any checkpoint; the checkpointer's connection is FULL as well, so the database file is fsynced before the WAL
/// can start over. Closing the store stops the checkpointer and closes its connection before the writer's, whose close
/// (the last connection) checkpoints everything and removes the WAL, as before.
/// </para>
/// </remarks>
internal sealed unsafe partial class WalCheckpointer : IDisposable
{
    /// <summary>SQLite's own automatic-checkpoint threshold.</summary>
    public const int DefaultBackgroundFrames = 1000;

    /// <summary>~32 MB of 4 KB pages: the WAL starts over about once per 8,000 frames instead of every 1,000.</summary>
    public const int DefaultWriterFrames = 8000;

    /// <summary>How long without a commit before the checkpointer empties the WAL file.</summary>
    public static readonly TimeSpan DefaultIdleDelay = TimeSpan.FromSeconds(1);

    private const int FrameBytes = 24 + 4096; // frame header + SQLite's default page size, which the store keeps

    private static readonly Counter<long> Checkpoints = HypercoreTelemetry.Meter.CreateCounter<long>(
        "hypercore.store.checkpoints", "{checkpoint}", "SQLite WAL checkpoints, by the thread that ran them (background or writer).");

    private readonly sqlite3 _writerDb;
    private readonly string _connectionString;
    private readonly string _walPath;
    private readonly Action<string> _logFailure;
    private readonly object _gate = new();

    /// <summary>
    /// Written by the hook on the writer thread: [0] the WAL's size in frames after the writer's last commit, -1 once
    /// read; [1] the same, never reset (the checkpointer reads it: did its pass reach the WAL's end?).
    /// </summary>
    private readonly int* _walFrames;

    // Writer thread only.
    private int _lastFrames;
    private int _generation; // counts WAL restarts the writer saw (its size went down)
    private Thread? _thread;

    // Shared between the writer and the checkpointer thread.
    private int _busy; // 1 from a request until the checkpointer's pass ends
    private int _requestedGeneration;
    private bool _requestedSync;
    private long _copied; // (generation << 32) | frames copied, by the last background pass or the writer's checkpoint
    private long _lastCommit; // Environment.TickCount64 at the writer's last commit that wrote frames
    private bool _requested;
    private bool _stopping;
    private long _background;
    private long _onWriter;
    private long _writerCopied;
    private long _truncations;
    private long _hardPointWaits;

    /// <param name="writerDb">The writer's connection, whose busy handler waits up to the store's busy timeout.</param>
    public WalCheckpointer(sqlite3 writerDb, string connectionString, string databasePath, int backgroundFrames, int writerFrames, TimeSpan idleDelay, Action<string> logFailure)
    {
        _writerDb = writerDb;
        _connectionString = connectionString;
        _walPath = databasePath + "-wal";
        BackgroundFrames = backgroundFrames;
        WriterFrames = writerFrames;
        CheapFrames = Math.Max(1, backgroundFrames / 4);
        HardFrames = writerFrames + 2 * backgroundFrames;
        IdleDelay = idleDelay;
        _logFailure = logFailure;
        _walFrames = (int*)NativeMemory.AllocZeroed(2 * sizeof(int));
        *_walFrames = -1;

        // A restart after a WAL longer than the hard point (a reader held a snapshot) cuts the file back to it; the
        // usual cycle ends below it and never pays for growing the file again.
        var rc = raw.sqlite3_exec(writerDb, $"PRAGMA journal_size_limit = {32L + (long)HardFrames * FrameBytes};");
        if (rc != raw.SQLITE_OK)
        {
            logFailure($"journal_size_limit not set: {raw.sqlite3_errstr(rc).utf8_to_string()} ({rc})");
        }

        // Replaces SQLite's automatic checkpoint (itself a WAL hook) on this connection.
        sqlite3_wal_hook(writerDb.DangerousGetHandle(), &OnCommit, _walFrames);
    }

    /// <summary>Frames not yet copied at which the background thread checkpoints.</summary>
    public int BackgroundFrames { get; }

    /// <summary>WAL size in frames from which the writer lets the WAL start over when that is cheap.</summary>
    public int WriterFrames { get; }

    /// <summary>At most this many frames left by the background: the writer's own checkpoint is cheap.</summary>
    public int CheapFrames { get; }

    /// <summary>WAL size in frames at which the writer checkpoints whatever the background left.</summary>
    public int HardFrames { get; }

    /// <summary>Time without a commit after which the checkpointer empties the WAL file.</summary>
    public TimeSpan IdleDelay { get; }

    /// <summary>How long the writer waits at <see cref="HardFrames"/> for a running background pass to end.</summary>
    public TimeSpan HardPointWait { get; internal set; } = TimeSpan.FromSeconds(2);

    /// <summary>Tests: runs on the checkpointer thread before each background pass (e.g. to make a pass as slow as a busy disk's fsync).</summary>
    internal Action? BeforeBackgroundPass { get; set; }

    /// <summary>Times the writer waited at <see cref="HardFrames"/> for a background pass to end, then checkpointed (tests, diagnostics).</summary>
    public long HardPointWaits => Interlocked.Read(ref _hardPointWaits);

    /// <summary>Checkpoints the background thread ran (tests, diagnostics).</summary>
    public long BackgroundCheckpoints => Interlocked.Read(ref _background);

    /// <summary>Checkpoints the writer ran itself (tests, diagnostics).</summary>
    public long WriterCheckpoints => Interlocked.Read(ref _onWriter);

    /// <summary>Frames the writer's own checkpoints copied, in all (tests, diagnostics).</summary>
    public long WriterCopiedFrames => Interlocked.Read(ref _writerCopied);

    /// <summary>Times the checkpointer emptied the WAL file after a pause in the writes (tests, diagnostics).</summary>
    public long Truncations => Interlocked.Read(ref _truncations);

    /// <summary>On the writer thread, after a commit's callers were answered.</summary>
    public void AfterCommit()
    {
        var frames = *_walFrames;
        if (frames < 0)
        {
            return; // the commit wrote no frame
        }

        *_walFrames = -1;
        if (frames < _lastFrames)
        {
            _generation++; // the WAL started over: what was copied before is no longer in it
        }

        _lastFrames = frames;
        Volatile.Write(ref _lastCommit, Environment.TickCount64);
        if (frames >= 4 * WriterFrames)
        {
            CheckpointOnWriter(raw.SQLITE_CHECKPOINT_RESTART);
            return;
        }

        var idle = Volatile.Read(ref _busy) == 0;
        var left = frames - Copied();
        if (frames >= WriterFrames && idle && left <= CheapFrames)
        {
            CheckpointOnWriter(raw.SQLITE_CHECKPOINT_PASSIVE);
            return;
        }

        if (frames >= HardFrames && (idle || WaitForBackgroundPass()))
        {
            CheckpointOnWriter(raw.SQLITE_CHECKPOINT_PASSIVE);
            return;
        }

        idle = Volatile.Read(ref _busy) == 0;

        var near = frames >= WriterFrames - CheapFrames;
        if (left >= (near ? 1 : BackgroundFrames) && idle && Interlocked.CompareExchange(ref _busy, 1, 0) == 0)
        {
            Volatile.Write(ref _requestedGeneration, _generation);
            _thread ??= StartThread();
            lock (_gate)
            {
                _requestedSync = near;
                _requested = true;
                Monitor.Pulse(_gate);
            }
        }
    }

    /// <summary>Frames copied in the WAL the writer is writing now (writer thread).</summary>
    private int Copied()
    {
        var copied = Volatile.Read(ref _copied);
        return (int)(copied >> 32) == _generation ? (int)copied : 0;
    }

    /// <summary>
    /// At the hard point with a background pass running (writer thread): waits for that pass to end, at most
    /// <see cref="HardPointWait"/>. SQLite runs one checkpoint at a time, so the writer's own would be refused as busy
    /// while the pass runs, and the WAL grew on by every commit made meanwhile (a pass that fsyncs the database file on
    /// a busy disk: ~280 frames past the hard point in a CI run). A pass never waits for a lock (PASSIVE, no busy
    /// handler): it is its page copies and at most one fsync. False when it is still running at the limit.
    /// </summary>
    private bool WaitForBackgroundPass()
    {
        var deadline = Environment.TickCount64 + (long)HardPointWait.TotalMilliseconds;
        lock (_gate)
        {
            while (Volatile.Read(ref _busy) != 0)
            {
                var wait = deadline - Environment.TickCount64;
                if (wait <= 0)
                {
                    return false;
                }

                Monitor.Wait(_gate, (int)wait);
            }
        }

        Interlocked.Increment(ref _hardPointWaits);
        return true;
    }

    private void CheckpointOnWriter(int mode)
    {
        // RESTART waits for readers through the writer's busy handler (up to the busy timeout); PASSIVE never waits.
        var before = Copied();
        var rc = raw.sqlite3_wal_checkpoint_v2(_writerDb, "main", mode, out _, out var copied);
        if (rc == raw.SQLITE_OK)
        {
            Volatile.Write(ref _copied, ((long)_generation << 32) | (uint)copied);
            Interlocked.Add(ref _writerCopied, Math.Max(0, copied - before));
            Interlocked.Increment(ref _onWriter);
            Checkpoints.Add(1, new KeyValuePair<string, object?>("thread", "writer"));
        }
        else if (rc != raw.SQLITE_BUSY)
        {
            // The commit is durable in the WAL regardless; the next commit tries again.
            _logFailure($"checkpoint on the writer failed: {raw.sqlite3_errstr(rc).utf8_to_string()} ({rc})");
        }
    }

    private Thread StartThread()
    {
        // A small stack: the thread only calls into SQLite.
        var thread = new Thread(Run, maxStackSize: 256 * 1024) { IsBackground = true, Name = "sqlite checkpointer" };
        thread.Start();
        return thread;
    }

    private void Run()
    {
        SqliteConnection? connection = null;
        var truncate = false; // armed by a pass: the writer wrote; after IdleDelay without a commit, empty the WAL file
        try
        {
            while (true)
            {
                bool sync, idle = false;
                lock (_gate)
                {
                    while (!_requested && !_stopping)
                    {
                        if (!truncate)
                        {
                            Monitor.Wait(_gate);
                            continue;
                        }

                        var wait = (long)IdleDelay.TotalMilliseconds - (Environment.TickCount64 - Volatile.Read(ref _lastCommit));
                        if (wait <= 0)
                        {
                            idle = true;
                            break;
                        }

                        Monitor.Wait(_gate, (int)Math.Min(int.MaxValue, wait));
                    }

                    if (_stopping)
                    {
                        return;
                    }

                    sync = _requestedSync;
                    if (!idle)
                    {
                        _requested = false;
                    }
                }

                try
                {
                    connection ??= OpenConnection();
                    if (idle)
                    {
                        truncate = false;
                        EmptyWal(connection.Handle!);
                        continue;
                    }

                    truncate = true;
                    Pass(connection.Handle!, sync);
                }
                catch (Exception ex)
                {
                    // The writer's own checkpoint still bounds the WAL.
                    _logFailure($"background checkpoint failed: {ex.Message}");
                    connection?.Dispose();
                    connection = null;
                }
                finally
                {
                    if (!idle)
                    {
                        // Under the gate: the writer may be waiting at the hard point for this pass to end.
                        lock (_gate)
                        {
                            Volatile.Write(ref _busy, 0);
                            Monitor.PulseAll(_gate);
                        }
                    }
                }
            }
        }
        finally
        {
            connection?.Dispose();
        }
    }

    private void Pass(sqlite3 db, bool sync)
    {
        BeforeBackgroundPass?.Invoke();
        var generation = Volatile.Read(ref _requestedGeneration);
        var last = Volatile.Read(ref _copied);
        var before = (int)(last >> 32) == generation ? (int)last : 0;
        var rc = raw.sqlite3_wal_checkpoint_v2(db, "main", raw.SQLITE_CHECKPOINT_PASSIVE, out _, out var copied);
        if (rc == raw.SQLITE_OK)
        {
            // A pass overtaken by a commit copied its pages without fsyncing the database file (SQLite fsyncs it only
            // when the copy reached the WAL's end); near the writer's point, fsync them here, so that the writer's own
            // checkpoint fsyncs only what it copies itself.
            if (sync && copied > before && copied < Volatile.Read(ref _walFrames[1]))
            {
                SyncDatabase(db);
            }

            Volatile.Write(ref _copied, ((long)generation << 32) | (uint)copied);
            Interlocked.Increment(ref _background);
            Checkpoints.Add(1, new KeyValuePair<string, object?>("thread", "background"));
        }
        else if (rc != raw.SQLITE_BUSY)
        {
            _logFailure($"background checkpoint failed: {raw.sqlite3_errstr(rc).utf8_to_string()} ({rc})");
        }
    }

    /// <summary>
    /// After a pause in the writes: copy what is left, then TRUNCATE (the WAL file to 0 bytes; the next commit starts a
    /// new one). This connection has no busy handler, so TRUNCATE never waits: with the writer in a transaction or a
    /// reader inside the WAL it returns SQLITE_BUSY and the file stays until the next pause.
    /// </summary>
    private void EmptyWal(sqlite3 db)
    {
        if (!File.Exists(_walPath) || new FileInfo(_walPath).Length == 0)
        {
            return;
        }

        var rc = raw.sqlite3_wal_checkpoint_v2(db, "main", raw.SQLITE_CHECKPOINT_PASSIVE, out _, out _);
        if (rc == raw.SQLITE_OK)
        {
            rc = raw.sqlite3_wal_checkpoint_v2(db, "main", raw.SQLITE_CHECKPOINT_TRUNCATE, out _, out _);
        }

        if (rc == raw.SQLITE_OK)
        {
            Interlocked.Increment(ref _truncations);
        }
        else if (rc != raw.SQLITE_BUSY)
        {
            _logFailure($"emptying the WAL failed: {raw.sqlite3_errstr(rc).utf8_to_string()} ({rc})");
        }
    }

    private SqliteConnection OpenConnection()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var command = connection.CreateCommand();

        // FULL: the database file is fsynced before the checkpoint records its frames as copied.
        command.CommandText = "PRAGMA synchronous = FULL;";
        command.ExecuteNonQuery();

        // No busy handler: a checkpoint from here never waits for the writer or a reader.
        raw.sqlite3_busy_timeout(connection.Handle!, 0);
        return connection;
    }

    /// <summary>fsync of the database file through SQLite's own file handle (xSync of this connection's main file).</summary>
    private void SyncDatabase(sqlite3 db)
    {
        void* file = null;
        int rc;
        fixed (byte* main = "main"u8)
        {
            rc = sqlite3_file_control(db.DangerousGetHandle(), main, SqliteFcntlFilePointer, &file);
        }

        if (rc == raw.SQLITE_OK && file is not null)
        {
            // sqlite3_file starts with its sqlite3_io_methods*: { int iVersion; xClose; xRead; xWrite; xTruncate; xSync; ... }.
            var methods = *(void***)file;
            var xSync = (delegate* unmanaged[Cdecl]<void*, int, int>)methods[5];
            rc = xSync(file, SqliteSyncFull);
        }

        if (rc != raw.SQLITE_OK)
        {
            _logFailure($"database fsync after a checkpoint failed: {raw.sqlite3_errstr(rc).utf8_to_string()} ({rc})");
        }
    }

    /// <summary>Stops the thread (after its current pass) and closes its connection; then removes the hook.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.Pulse(_gate);
        }

        _thread?.Join();
        sqlite3_wal_hook(_writerDb.DangerousGetHandle(), null, null);
        NativeMemory.Free(_walFrames);
    }

    /// <summary>Called by SQLite on the writer thread inside each COMMIT, after its frames are in the WAL.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int OnCommit(void* walFrames, nint db, byte* name, int frames)
    {
        ((int*)walFrames)[0] = frames;
        Volatile.Write(ref ((int*)walFrames)[1], frames);
        return 0; // SQLITE_OK
    }

    private const int SqliteFcntlFilePointer = 7; // SQLITE_FCNTL_FILE_POINTER
    private const int SqliteSyncFull = 3; // SQLITE_SYNC_FULL

    // SQLitePCL.raw does not wrap sqlite3_wal_hook nor sqlite3_file_control; the same library it loads.
    [LibraryImport("e_sqlite3")]
    private static partial nint sqlite3_wal_hook(nint db, delegate* unmanaged[Cdecl]<void*, nint, byte*, int, int> callback, void* arg);

    [LibraryImport("e_sqlite3")]
    private static partial int sqlite3_file_control(nint db, byte* name, int op, void* arg);
}

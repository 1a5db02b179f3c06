using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hypercore.Telemetry;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// Copies the WAL back into the database file off the writer thread (issue 15, seventh pass). SQLite's automatic
/// checkpoint ran inside the COMMIT of every write that took the WAL past 1,000 pages: page copies and an fsync of the
/// database file (~3 ms on a quiet disk, 205 times in a 6 s run of goal 2) on the writer, before that commit's callers
/// were answered and with every later write queued behind it.
/// </summary>
/// <remarks>
/// <para>
/// The automatic checkpoint is replaced by a WAL hook on the writer connection that records the WAL's size (frames)
/// after each commit. After the writer has answered a commit's callers it calls <see cref="AfterCommit"/>: when
/// <see cref="BackgroundFrames"/> frames are not yet copied, a thread of its own (started at the first need, so an idle
/// daemon has none) runs a PASSIVE checkpoint on its own connection, which never blocks the writer or a reader.
/// </para>
/// <para>
/// SQLite starts the WAL again from its beginning only when a write transaction begins with every frame copied. A
/// background checkpoint cannot achieve that while commits follow each other (each adds frames after it), so under
/// a steady stream of writes the WAL would grow without end. Bound: when it reaches <see cref="WriterFrames"/>, the writer
/// itself runs a PASSIVE checkpoint after answering its callers (copying only what the background one left, then the
/// database fsync), and the next transaction starts the WAL over; past four times that (readers kept a snapshot and
/// PASSIVE could not finish), a RESTART checkpoint, which waits for those readers up to the busy timeout.
/// </para>
/// <para>
/// Durability does not change: a commit is durable when its frames are fsynced in the WAL (<c>synchronous=FULL</c>),
/// before any checkpoint; the checkpointer's connection is FULL as well, so the database file is fsynced before SQLite
/// records the frames as copied. Closing the store stops the checkpointer and closes its connection before the writer's,
/// whose close (the last connection) checkpoints everything and removes the WAL, as before.
/// </para>
/// </remarks>
internal sealed unsafe partial class WalCheckpointer : IDisposable
{
    /// <summary>SQLite's own automatic-checkpoint threshold.</summary>
    public const int DefaultBackgroundFrames = 1000;

    /// <summary>~32 MB of 4 KB pages: the writer checkpoints once per 8,000 frames instead of every 1,000.</summary>
    public const int DefaultWriterFrames = 8000;

    private static readonly Counter<long> Checkpoints = HypercoreTelemetry.Meter.CreateCounter<long>(
        "hypercore.store.checkpoints", "{checkpoint}", "SQLite WAL checkpoints, by the thread that ran them (background or writer).");

    private readonly sqlite3 _writerDb;
    private readonly string _connectionString;
    private readonly Action<string> _logFailure;
    private readonly object _gate = new();

    /// <summary>The WAL's size in frames after the writer's last commit, written by the hook on the writer thread; -1: no commit since read.</summary>
    private readonly int* _walFrames;

    // Writer thread only.
    private int _lastFrames;
    private int _generation; // counts WAL restarts the writer saw (its size went down)
    private Thread? _thread;

    // Shared between the writer and the checkpointer thread.
    private int _busy; // 1 from a request until the checkpointer's pass ends
    private int _requestedGeneration;
    private long _copied; // (generation << 32) | frames copied by the last background pass
    private bool _requested;
    private bool _stopping;
    private long _background;
    private long _onWriter;

    /// <param name="writerDb">The writer's connection, whose busy handler waits up to the store's busy timeout.</param>
    public WalCheckpointer(sqlite3 writerDb, string connectionString, int backgroundFrames, int writerFrames, Action<string> logFailure)
    {
        _writerDb = writerDb;
        _connectionString = connectionString;
        BackgroundFrames = backgroundFrames;
        WriterFrames = writerFrames;
        _logFailure = logFailure;
        _walFrames = (int*)NativeMemory.Alloc(sizeof(int));
        *_walFrames = -1;

        // Replaces SQLite's automatic checkpoint (itself a WAL hook) on this connection.
        sqlite3_wal_hook(writerDb.DangerousGetHandle(), &OnCommit, _walFrames);
    }

    /// <summary>Frames not yet copied at which the background thread checkpoints.</summary>
    public int BackgroundFrames { get; }

    /// <summary>WAL size in frames at which the writer checkpoints itself, after answering its callers.</summary>
    public int WriterFrames { get; }

    /// <summary>Checkpoints the background thread ran (tests, diagnostics).</summary>
    public long BackgroundCheckpoints => Interlocked.Read(ref _background);

    /// <summary>Checkpoints the writer ran itself (tests, diagnostics).</summary>
    public long WriterCheckpoints => Interlocked.Read(ref _onWriter);

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
            _generation++; // the WAL started over: what the checkpointer copied before is no longer in it
        }

        _lastFrames = frames;
        if (frames >= WriterFrames)
        {
            CheckpointOnWriter(frames >= 4 * WriterFrames ? raw.SQLITE_CHECKPOINT_RESTART : raw.SQLITE_CHECKPOINT_PASSIVE);
            return;
        }

        var copied = Volatile.Read(ref _copied);
        var backlog = frames - ((int)(copied >> 32) == _generation ? (int)copied : 0);
        if (backlog >= BackgroundFrames && Interlocked.CompareExchange(ref _busy, 1, 0) == 0)
        {
            Volatile.Write(ref _requestedGeneration, _generation);
            _thread ??= StartThread();
            lock (_gate)
            {
                _requested = true;
                Monitor.Pulse(_gate);
            }
        }
    }

    private void CheckpointOnWriter(int mode)
    {
        // RESTART waits for readers through the writer's busy handler (up to the busy timeout); PASSIVE never waits.
        var rc = raw.sqlite3_wal_checkpoint_v2(_writerDb, "main", mode, out _, out _);
        if (rc == raw.SQLITE_OK)
        {
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
        try
        {
            while (true)
            {
                lock (_gate)
                {
                    while (!_requested && !_stopping)
                    {
                        Monitor.Wait(_gate);
                    }

                    if (_stopping)
                    {
                        return;
                    }

                    _requested = false;
                }

                var generation = Volatile.Read(ref _requestedGeneration);
                try
                {
                    connection ??= OpenConnection();
                    var rc = raw.sqlite3_wal_checkpoint_v2(connection.Handle!, "main", raw.SQLITE_CHECKPOINT_PASSIVE, out _, out var copied);
                    if (rc == raw.SQLITE_OK)
                    {
                        Volatile.Write(ref _copied, ((long)generation << 32) | (uint)copied);
                        Interlocked.Increment(ref _background);
                        Checkpoints.Add(1, new KeyValuePair<string, object?>("thread", "background"));
                    }
                    else if (rc != raw.SQLITE_BUSY)
                    {
                        _logFailure($"background checkpoint failed: {raw.sqlite3_errstr(rc).utf8_to_string()} ({rc})");
                    }
                }
                catch (Exception ex)
                {
                    // The writer's own checkpoint at WriterFrames still bounds the WAL.
                    _logFailure($"background checkpoint failed: {ex.Message}");
                    connection?.Dispose();
                    connection = null;
                }
                finally
                {
                    Volatile.Write(ref _busy, 0);
                }
            }
        }
        finally
        {
            connection?.Dispose();
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
        return connection;
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
        *(int*)walFrames = frames;
        return 0; // SQLITE_OK
    }

    // SQLitePCL.raw does not wrap sqlite3_wal_hook; the same library it loads.
    [LibraryImport("e_sqlite3")]
    private static partial nint sqlite3_wal_hook(nint db, delegate* unmanaged[Cdecl]<void*, nint, byte*, int, int> callback, void* arg);
}

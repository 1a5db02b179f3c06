using System.Diagnostics;
using System.Diagnostics.Metrics;
using Hypercore.Telemetry;
using Microsoft.Extensions.Logging;
using SQLitePCL;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// The sync step (issue 15, fourteenth pass): the writer's commit no longer waits for its own fsync. The writer connection
/// runs with <c>synchronous=NORMAL</c> (in WAL mode SQLite syncs nothing at COMMIT; it still syncs the WAL before every
/// checkpoint and the database file after it, so no frame is overwritten before it is on disk in the database), and hands
/// each committed batch to a thread of its own, which fdatasyncs the WAL (<see cref="WalFile"/>) and only then publishes
/// the batch's events and completes its callers, in commit order. The writer meanwhile applies and commits the next batch:
/// at 64 clients every API call was queued for or inside the commit while its fsync ran, and a core idled.
/// </summary>
/// <remarks>
/// <para>
/// One fdatasync covers every batch committed before it began: the step takes all the batches queued so far, syncs once,
/// then releases them. Nothing a caller or a watcher sees as done precedes the sync that covers it, read-decided failures
/// (already exists, conflict, not found) included: they describe a state that the sync makes durable.
/// </para>
/// <para>
/// What changes: readers on other connections (and the writer's next batch, with its version checks) see a committed batch
/// before its sync, as soon as SQLite publishes its frames. A crash of the process loses nothing (the frames are in the
/// kernel's page cache, and SQLite recovers them from the WAL); a power loss or kernel crash can lose only batches no
/// caller was told about, plus what a reader saw of them. A write of the next batch that depended on such a row is
/// acknowledged only by a later sync, which covers the row too. <see cref="Remember"/> stays on the writer at COMMIT: the
/// cache returns a record only for a row a reader found in the database at that version, so it tells nobody anything.
/// </para>
/// <para>
/// A failed sync stops the store (fail-stop): after an fsync error the kernel may have dropped the unwritten pages and
/// cleared the error, so a later sync's success proves nothing. That batch, every batch committed after it and every
/// later write fail with one <see cref="StoreException"/>; no event of them is published.
/// </para>
/// </remarks>
public sealed partial class SqliteMicroVmStore
{
    private static readonly Histogram<double> WalSyncDuration = HypercoreTelemetry.Meter.CreateHistogram<double>(
        "hypercore.store.wal.sync.duration", "s", "Time of one fdatasync of the WAL, which makes every commit before it durable.");

    private static readonly Histogram<int> WalSyncBatches = HypercoreTelemetry.Meter.CreateHistogram<int>(
        "hypercore.store.wal.sync.commits", "{commit}", "Commits one fdatasync of the WAL made durable.");

    private readonly object _syncGate = new();
    private List<CommittedBatch> _syncQueue = [];
    private bool _syncStopping;
    private Thread? _syncThread;
    private WalFile? _walFile;
    private Action? _syncWalFile;
    private long _walSyncs;

    /// <summary>Set once a sync failed: every write from then on fails with it.</summary>
    private StoreException? _writeFailure;

    /// <summary>The fdatasyncs of the WAL the sync step ran (tests, diagnostics).</summary>
    internal long WalSyncs => Interlocked.Read(ref _walSyncs);

    /// <summary>True when commits are synced by the sync step (false: SQLite syncs inside COMMIT, synchronous=FULL).</summary>
    internal bool PipelinedSync => _walFile is not null;

    /// <summary>
    /// On the writer thread before its first commit: the WAL file to sync, then NORMAL on the writer connection. When the
    /// file SQLite writes cannot be shown to be the one opened, the writer keeps FULL (SQLite syncs in each COMMIT) and the
    /// step only keeps the release order.
    /// </summary>
    private void StartSyncStep()
    {
        var wal = WalFile.TryOpen(_writer.Handle!, _path + "-wal", out var why);
        if (wal is not null)
        {
            var rc = raw.sqlite3_exec(_writer.Handle!, "PRAGMA synchronous = NORMAL;");
            if (rc != raw.SQLITE_OK)
            {
                wal.Dispose();
                wal = null;
                why = $"PRAGMA synchronous = NORMAL failed: {raw.sqlite3_errstr(rc).utf8_to_string()} ({rc})";
            }
        }

        if (wal is null)
        {
            LogSyncAtCommit(why ?? "unknown");
        }

        _walFile = wal;
        _syncWalFile = SyncWalFile;
        _syncThread = new Thread(RunSync) { IsBackground = true, Name = "sqlite store sync" };
        _syncThread.Start();
    }

    /// <summary>On the writer thread, right after a COMMIT: the batch waits for the next sync.</summary>
    private void HandOff(CommittedBatch batch)
    {
        lock (_syncGate)
        {
            _syncQueue.Add(batch);
            Monitor.Pulse(_syncGate);
        }
    }

    /// <summary>On the writer thread at its end: the step releases what is queued, then stops.</summary>
    private void StopSyncStep()
    {
        if (_syncThread is null)
        {
            return;
        }

        lock (_syncGate)
        {
            _syncStopping = true;
            Monitor.Pulse(_syncGate);
        }

        _syncThread.Join();
        _walFile?.Dispose();
    }

    private void RunSync()
    {
        var spare = new List<CommittedBatch>();
        while (true)
        {
            List<CommittedBatch> group;
            lock (_syncGate)
            {
                while (_syncQueue.Count == 0 && !_syncStopping)
                {
                    Monitor.Wait(_syncGate);
                }

                if (_syncQueue.Count == 0)
                {
                    return; // stopping, and everything committed was released
                }

                group = _syncQueue;
                _syncQueue = spare;
            }

            var failure = Volatile.Read(ref _writeFailure) ?? SyncGroup(group.Count);
            foreach (var batch in group)
            {
                if (failure is null)
                {
                    Release(batch);
                }
                else
                {
                    batch.Fail(failure);
                }
            }

            group.Clear();
            spare = group;
        }
    }

    /// <summary>One sync for the commits of <paramref name="commits"/> batches; null, or the failure that now stops the store.</summary>
    private StoreException? SyncGroup(int commits)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            if (_options.WalSync is { } wrap)
            {
                wrap(_syncWalFile!);
            }
            else
            {
                SyncWalFile();
            }
        }
        catch (Exception ex)
        {
            var failure = new StoreException(
                $"sqlite store {_path}: the sync of the WAL failed ({ex.Message}); the writes committed since the last sync are not " +
                "acknowledged and the store refuses every write from now on: after a failed sync the kernel may have dropped the " +
                "unwritten pages, so what the file holds on disk is unknown. Restart the daemon: SQLite recovers the database " +
                "from what is on disk.", ex);
            Interlocked.CompareExchange(ref _writeFailure, failure, null);
            LogSyncFailed(ex.Message);
            return _writeFailure;
        }

        Interlocked.Increment(ref _walSyncs);
        WalSyncDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
        WalSyncBatches.Record(commits);
        return null;
    }

    private void SyncWalFile()
    {
        if (_walFile?.Sync() is { } errno and not 0)
        {
            throw new IOException($"fdatasync of {_path}-wal: {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
        }
    }

    /// <summary>
    /// Durable now: publish first, so a caller that reacts to its own write finds the event already queued; then the API's
    /// callers, then the reconciler's (issue 15, eighth pass: each completion queues its caller's continuation on the thread
    /// pool, which runs them in that order, so an answer does not wait behind the reconcile passes that shared its commit).
    /// </summary>
    private void Release(CommittedBatch batch)
    {
        var (writes, outcomes, failures) = (batch.Writes, batch.Outcomes, batch.Failures);
        for (var i = 0; i < writes.Length; i++)
        {
            if (failures[i] is null && outcomes[i].Event is { } ev)
            {
                _hub.Publish(ev);
            }
        }

        Complete(writes, outcomes, failures, requests: true);
        Complete(writes, outcomes, failures, requests: false);
    }

    /// <summary>A committed batch waiting for its sync: only the sync step touches it once handed off.</summary>
    private sealed class CommittedBatch(PendingWrite[] writes, WriteOutcome[] outcomes, Exception?[] failures)
    {
        public PendingWrite[] Writes { get; } = writes;

        public WriteOutcome[] Outcomes { get; } = outcomes;

        public Exception?[] Failures { get; } = failures;

        public void Fail(Exception error)
        {
            foreach (var write in Writes)
            {
                write.Fail(error);
            }
        }
    }

    [LoggerMessage(2006, LogLevel.Critical, "SQLite store: the WAL's sync failed; no write since the last sync is acknowledged and the store refuses writes until the daemon restarts: {Message}")]
    private partial void LogSyncFailed(string message);

    [LoggerMessage(2007, LogLevel.Warning, "SQLite store: commits are synced inside COMMIT (synchronous=FULL), not by the sync step: {Why}")]
    private partial void LogSyncAtCommit(string why);
}

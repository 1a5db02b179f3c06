using System.Diagnostics;
using System.Text.Json;
using Hypercore.MicroVms;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Hypercore.Store.Sqlite;

public sealed partial class SqliteMicroVmStore
{
    /// <summary>
    /// The rowid of the row <see cref="SelectForWrite"/> read last (writer thread only). The write that follows updates or
    /// deletes that row by rowid, one seek of the table, instead of finding it again through the (namespace, id) index
    /// (issue 15, ninth pass). Within the transaction nothing else can move the row between the two.
    /// </summary>
    private long _selectedRowId;

    /// <summary>Status writes that went to the listed record with no read first (writer thread; <see cref="TryUpdateWrittenStatus"/>).</summary>
    private long _statusWritesWithoutRead;

    /// <summary>A batch of only the reconciler's writes waits here briefly for a request write (issue 15, tenth pass).</summary>
    private readonly BackgroundWriteWait _backgroundWait;

    /// <summary>Status writes that updated the record the writer listed, with no read before them (tests, diagnostics).</summary>
    internal long StatusWritesWithoutRead => Volatile.Read(ref _statusWritesWithoutRead);

    /// <summary>
    /// Queues a write; the task completes once the commit that holds it is durable (or it failed). Not an async method
    /// (issue 15, sixth pass): the caller awaits the write's own task, with no state machine of ours in between; every
    /// failure before the write is queued still arrives through the task, as from an async method.
    /// </summary>
    private Task<MicroVm> Enqueue(PendingWrite write, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            write.Release();
            return Task.FromCanceled<MicroVm>(cancellationToken);
        }

        write.Token = cancellationToken;
        if (Volatile.Read(ref _disposed) != 0 || !_writes.Writer.TryWrite(write))
        {
            write.Release();
            return Task.FromException<MicroVm>(new ObjectDisposedException(GetType().FullName));
        }

        if (write.IsRequest)
        {
            _backgroundWait.RequestQueued();
        }

        // Not WaitAsync(cancellationToken): once the write is in a transaction its outcome must be reported.
        return write.Completion.Task;
    }

    /// <summary>
    /// The writer runs on a thread of its own (issue 15): on the thread pool its next commit waited for a free pool
    /// thread behind request work, and each fsync held a pool thread blocked. The task completes when it ends.
    /// </summary>
    private Task StartWriterThread()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                RunWriter();
                done.TrySetResult();
            }
            catch (Exception ex)
            {
                done.TrySetException(ex);
            }
        })
        {
            IsBackground = true,
            Name = "sqlite store writer",
        };
        thread.Start();
        return done.Task;
    }

    /// <summary>
    /// Blocks the writer thread until a write is queued; false once the queue is closed and empty. The queuing thread
    /// releases the wait itself (the channel's synchronous continuations: the blocked wait's continuation only sets an
    /// event), with no thread-pool work item in between.
    /// </summary>
    private static bool WaitForWrites(System.Threading.Channels.ChannelReader<PendingWrite> reader)
    {
        var wait = reader.WaitToReadAsync();
        return wait.IsCompletedSuccessfully ? wait.Result : wait.AsTask().GetAwaiter().GetResult();
    }

    /// <summary>
    /// The single writer. Takes everything queued (up to MaxBatchSize), applies it in one transaction, commits
    /// (one fsync), then publishes the events and completes the callers, in order. While it commits, new writes
    /// queue up and form the next group, so a lone writer pays one fsync and a crowd shares one.
    /// </summary>
    private void RunWriter()
    {
        var batch = new List<PendingWrite>(_options.MaxBatchSize);
        var retry = new Queue<PendingWrite>();
        var reader = _writes.Reader;
        while (retry.Count > 0 || WaitForWrites(reader))
        {
            batch.Clear();
            while (batch.Count < _options.MaxBatchSize && retry.TryDequeue(out var again))
            {
                batch.Add(again);
            }

            // Also takes what is queued; a batch of only background writes may wait briefly for a request write.
            _backgroundWait.Fill(batch, _options.MaxBatchSize, reader);

            try
            {
                _checkpointer ??= StartCommitting();
                CommitBatch(batch, retry);

                // After the callers were answered (SQLite's own checkpoint ran inside the COMMIT, before them).
                _checkpointer.AfterCommit();
            }
            catch (Exception ex)
            {
                // CommitBatch handles its own failures; this is a last guard so that no caller waits forever.
                foreach (var write in batch)
                {
                    write.Fail(ex);
                }
            }
        }
    }

    /// <summary>
    /// Before the first commit, not at open (issue 15, seventh pass): the busy handler and the checkpointer's WAL hook
    /// (a native import resolved at its first call) then cost a daemon that writes nothing no code pages (goal 1's idle
    /// RSS). No field of its own in SqliteMicroVmStore.cs: a member added there before the read methods renumbers their
    /// lambdas, which moves them out of the start's profile-ordered code (vistarad.order; +1 MB idle RSS measured).
    /// </summary>
    private WalCheckpointer StartCommitting()
    {
        _commands.UseBusyTimeout(_options.BusyTimeout);
        var connectionString = new SqliteConnectionStringBuilder(_writer.ConnectionString) { Mode = SqliteOpenMode.ReadWrite }.ToString();
        var checkpointer = new WalCheckpointer(
            _writer.Handle!, connectionString, _path, _options.CheckpointBackgroundFrames, _options.CheckpointWriterFrames, _options.CheckpointIdleDelay, LogCheckpointFailed);
        Volatile.Write(ref _checkpointer, checkpointer);
        return checkpointer;
    }

    private void CommitBatch(List<PendingWrite> batch, Queue<PendingWrite> retry)
    {
        var started = Stopwatch.GetTimestamp();
        if (WriteQueued.Enabled)
        {
            foreach (var write in batch)
            {
                WriteQueued.Record(Stopwatch.GetElapsedTime(write.Enqueued, started).TotalSeconds);
            }
        }

        var outcomes = new WriteOutcome[batch.Count];
        var failures = new Exception?[batch.Count];
        try
        {
            _commands.Begin(); // waits for another process's lock up to BusyTimeout (SQLite's busy handler)

            // Read the counter inside the write lock rather than trusting memory, so versions stay unique even if
            // another process wrote to the file in between.
            var first = _commands.ReadCounter();
            _batchResourceVersion = first;
            for (var i = 0; i < batch.Count; i++)
            {
                var write = batch[i];
                if (write.Token.IsCancellationRequested)
                {
                    failures[i] = new OperationCanceledException(write.Token);
                    continue;
                }

                try
                {
                    outcomes[i] = Apply(write);
                }
                catch (Exception ex) when (ex is AlreadyExistsException or NotFoundException or ConflictException)
                {
                    failures[i] = ex; // decided by a read; nothing was written
                }
                catch (Exception ex)
                {
                    // The transaction may be damaged: undo all of it, fail this write, and run the others again.
                    Rollback();
                    var error = ex is SqliteException sqlite ? Translate(sqlite, "writing") : ex as StoreException ?? new StoreException($"sqlite store {_path}: write failed: {ex.Message}", ex);
                    write.Fail(error);
                    var others = new List<PendingWrite>(batch.Count - 1 + retry.Count);
                    for (var j = 0; j < batch.Count; j++)
                    {
                        if (j != i)
                        {
                            others.Add(batch[j]);
                        }
                    }

                    others.AddRange(retry);
                    retry.Clear();
                    foreach (var other in others)
                    {
                        retry.Enqueue(other);
                    }

                    LogWriteFailed(batch.Count - 1, ex.Message);
                    return;
                }
            }

            if (_batchResourceVersion != first)
            {
                _commands.WriteCounter(_batchResourceVersion);
            }

            _commands.Commit();
        }
        catch (Exception ex)
        {
            Rollback();
            var error = ex is SqliteException sqlite ? Translate(sqlite, "committing") : new StoreException($"sqlite store {_path}: commit failed: {ex.Message}", ex);
            LogCommitFailed(batch.Count, ex.Message);
            foreach (var write in batch)
            {
                write.Fail(error);
            }

            return;
        }

        CommitDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
        CommitBatchSize.Record(batch.Count);

        // Durable now. Remember what was written (before anyone can read it back), then publish first so a caller that
        // reacts to its own write finds the event already queued.
        for (var i = 0; i < batch.Count; i++)
        {
            if (failures[i] is null && outcomes[i].Event is { } ev)
            {
                Remember(ev, outcomes[i]);
            }
        }

        for (var i = 0; i < batch.Count; i++)
        {
            if (failures[i] is null && outcomes[i].Event is { } ev)
            {
                _hub.Publish(ev);
            }
        }

        // Issue 15 (eighth pass): the API's callers first, then the reconciler's. Each completion queues its caller's
        // continuation on the thread pool, which runs them in that order: an answer no longer waits behind the rest of
        // the reconcile passes whose writes shared its commit (their next inspect, availability check and status write).
        // Every write of the batch is durable and its event published before the first caller is released.
        // Issue 15 (thirteenth pass, idle13): the reconciler's callers are released at their own commit again, not held
        // until the next commit's request callers (the eleventh pass). Held, their follow-up work (the next step of each
        // pass, its next write) waited while the writer applied and committed the next batch, when every API call was
        // queued for or inside that batch, so a core often had nothing else to run (sched traces: 23-45 callers held in
        // those moments; bench/NOTES.md, idle13). The writer takes the queued batch at once, so their next writes mostly
        // go to the commit after it, as when they were held.
        Complete(batch, outcomes, failures, requests: true);
        Complete(batch, outcomes, failures, requests: false);
    }

    private static void Complete(List<PendingWrite> batch, WriteOutcome[] outcomes, Exception?[] failures, bool requests)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            if (batch[i].IsRequest != requests)
            {
                continue;
            }

            if (failures[i] is { } failure)
            {
                batch[i].Fail(failure);
            }
            else
            {
                batch[i].Succeed(outcomes[i].Result);
            }
        }
    }

    private void Rollback()
    {
        try
        {
            _commands.Rollback();
        }
        catch (SqliteException)
        {
            // SQLite may already have rolled back on its own (e.g. after an I/O error); nothing is left to undo.
        }
    }

    private long NextResourceVersion() => ++_batchResourceVersion;

    private WriteOutcome Apply(PendingWrite write) => write.Kind switch
    {
        WriteKind.Create => ApplyCreate(write.Spec!, write.SpecJson, write.Uid!, write.Now),
        WriteKind.UpdateSpec => ApplyUpdateSpec(write.Key, write.Spec!, write.SpecJson, write.ExpectedVersion!),
        WriteKind.UpdateStatus => ApplyUpdateStatus(write.Key, write.Status!, write.StatusJson, write.ExpectedVersion!, write.ClaimNode),
        WriteKind.Claim => ApplyClaim(write.Key, write.ClaimNode!),
        WriteKind.MarkForDeletion => ApplyMarkForDeletion(write.Key, write.Now),
        WriteKind.Remove => ApplyRemove(write.Key),
        _ => throw new InvalidOperationException($"unknown write {write.Kind}"),
    };

    private MicroVm? SelectForWrite(VmKey key, MicroVmStatus? replacingStatus = null)
    {
        var select = _commands.SelectByKey;
        select.BindText(1, key.Namespace);
        select.BindText(2, key.Id);
        try
        {
            if (!select.Step())
            {
                return null;
            }

            // The row's JSON is hashed (and parsed only when it is not the record this writer committed) straight from
            // SQLite's UTF-8, without a string of it (issue 15, sixth pass).
            var spec = select.Blob(1);
            var status = select.Blob(2);
            _selectedRow = new RowHash(ColumnHash.Of(spec), ColumnHash.Of(status));
            var version = select.Int64(4);
            _selectedRowId = select.Int64(8);
            if (_recent.Find(key, version, _selectedRow) is { } known)
            {
                return replacingStatus is null ? known : known with { Status = replacingStatus };
            }

            return new MicroVm
            {
                Uid = select.Text(0),
                Spec = JsonSerializer.Deserialize(spec, StoreReadJsonContext.Default.MicroVmSpec) ?? throw new JsonException("spec column holds null"),
                Status = replacingStatus ?? JsonSerializer.Deserialize(status, StoreReadJsonContext.Default.MicroVmStatus)
                    ?? throw new JsonException("status column holds null"),
                Generation = select.Int64(3),
                ResourceVersion = FormatVersion(version),
                CreatedAt = ParseTime(select.Text(5)),
                DeletionRequestedAt = select.IsNull(6) ? null : ParseTime(select.Text(6)),
                Claimed = !select.IsNull(7),
            };
        }
        finally
        {
            select.Reset();
        }
    }

    private WriteOutcome ApplyCreate(MicroVmSpec spec, JsonColumn specJson, string uid, DateTimeOffset now)
    {
        var rv = NextResourceVersion();
        var insert = _commands.Insert;
        insert.BindText(1, spec.Namespace);
        insert.BindText(2, spec.Id);
        insert.BindText(3, uid);
        insert.BindUtf8(4, specJson.Utf8);
        insert.BindUtf8(5, InitialStatusJson.Utf8);
        insert.BindInt64(6, rv);
        Span<byte> created = stackalloc byte[64];
        insert.BindUtf8(7, created[..FormatTime(now, created)]);
        if (insert.Execute() == 0)
        {
            _batchResourceVersion--; // nothing written: give the version back so the sequence has no gap
            throw new AlreadyExistsException(new VmKey(spec.Namespace, spec.Id));
        }

        var record = new MicroVm
        {
            Uid = uid,
            Spec = spec,
            Generation = 1,
            ResourceVersion = FormatVersion(rv),
            CreatedAt = now,
            Status = MicroVmStatus.Initial,
        };
        return new WriteOutcome(record, new StoreEvent(StoreEventType.Added, record), new RowHash(specJson.Hash, InitialStatusJson.Hash), rv, _commands.LastInsertRowId);
    }

    private WriteOutcome ApplyUpdateSpec(VmKey key, MicroVmSpec spec, JsonColumn specJson, string expectedResourceVersion)
    {
        var current = SelectForWrite(key) ?? throw new NotFoundException(key);
        if (current.ResourceVersion != expectedResourceVersion)
        {
            throw new ConflictException(key);
        }

        var generation = current.Spec.Equals(spec) ? current.Generation : current.Generation + 1;
        var rv = NextResourceVersion();
        var update = _commands.UpdateSpec;
        update.BindInt64(1, _selectedRowId);
        update.BindUtf8(3, specJson.Utf8);
        update.BindInt64(4, generation);
        update.BindInt64(5, rv);
        update.Execute();
        var updated = current with { Spec = spec, Generation = generation, ResourceVersion = FormatVersion(rv) };
        return new WriteOutcome(updated, new StoreEvent(StoreEventType.Modified, updated), _selectedRow with { Spec = specJson.Hash }, rv, _selectedRowId);
    }

    /// <summary>
    /// Replaces the status; with <paramref name="claimNode"/> also claims the VM for that node in the same UPDATE, so in
    /// one commit: durable together or not at all.
    /// </summary>
    private WriteOutcome ApplyUpdateStatus(VmKey key, MicroVmStatus status, JsonColumn statusJson, string expectedResourceVersion, string? claimNode = null)
    {
        if (_recent.FindWritten(key, out var written) && written.Vm.ResourceVersion == expectedResourceVersion &&
            TryUpdateWrittenStatus(key, written, status, statusJson, claimNode) is { } done)
        {
            return done;
        }

        var current = SelectForWrite(key, replacingStatus: status) ?? throw new NotFoundException(key);
        if (current.ResourceVersion != expectedResourceVersion)
        {
            throw new ConflictException(key);
        }

        return WriteStatus(_selectedRowId, current, _selectedRow, status, statusJson, claimNode);
    }

    /// <summary>
    /// A status write to the record this writer committed last for the key (issue 15, thirteenth pass): the reconciler's
    /// claim + Provisioning and Running writes follow the Create and each other, so the record, its version and its rowid
    /// are in <see cref="RecentRecords"/>. The row is then read by rowid (one seek of the table), only while it still has
    /// that key and that version, and its spec hashed (a spec edited outside the store without a new version is read as
    /// it is); the UPDATE follows by rowid. No read through the (namespace, id) index, no hashing of the old status, one
    /// record copy instead of two. Null when the row is not the listed one: nothing was written, and the write goes the
    /// usual way (which reports a conflict or a missing row). (An <c>UPDATE … RETURNING spec</c> in place of the read
    /// measured ~3 times slower than the two statements it replaced: SQLite runs RETURNING through an ephemeral table.)
    /// </summary>
    private WriteOutcome? TryUpdateWrittenStatus(VmKey key, RecentRecords.Entry written, MicroVmStatus status, JsonColumn statusJson, string? claimNode)
    {
        var read = _commands.SelectWritten;
        read.BindInt64(1, written.RowId);
        read.BindInt64(2, written.Version);
        read.BindText(3, key.Namespace);
        read.BindText(4, key.Id);
        try
        {
            if (!read.Step() || ColumnHash.Of(read.Blob(0)) != written.Text.Spec)
            {
                return null;
            }
        }
        finally
        {
            read.Reset();
        }

        var done = WriteStatus(written.RowId, written.Vm, written.Text, status, statusJson, claimNode);
        _statusWritesWithoutRead++;
        return done;
    }

    /// <summary>
    /// The status UPDATE by rowid of the row that holds <paramref name="current"/> (its JSON hashed as <paramref name="text"/>),
    /// claiming it for <paramref name="claimNode"/> in the same statement when given; both status-write paths end here.
    /// </summary>
    private WriteOutcome WriteStatus(long rowId, MicroVm current, RowHash text, MicroVmStatus status, JsonColumn statusJson, string? claimNode)
    {
        var rv = NextResourceVersion();
        var update = claimNode is null ? _commands.UpdateStatus : _commands.ClaimWithStatus;
        update.BindInt64(1, rowId);
        update.BindUtf8(3, statusJson.Utf8);
        update.BindInt64(4, rv);
        if (claimNode is not null)
        {
            update.BindText(5, claimNode);
        }

        update.Execute();
        var updated = current with { Status = status, Claimed = current.Claimed || claimNode is not null, ResourceVersion = FormatVersion(rv) };
        return new WriteOutcome(updated, new StoreEvent(StoreEventType.Modified, updated), text with { Status = statusJson.Hash }, rv, rowId);
    }

    private WriteOutcome ApplyClaim(VmKey key, string node)
    {
        var read = _commands.ReadClaim;
        read.BindText(1, key.Namespace);
        read.BindText(2, key.Id);
        bool ours;
        try
        {
            if (!read.Step())
            {
                throw new NotFoundException(key);
            }

            ours = !read.IsNull(0) && read.Text(0) == node;
        }
        finally
        {
            read.Reset();
        }

        if (ours)
        {
            return new WriteOutcome(SelectForWrite(key), null); // already ours: no write, no event
        }

        var rv = NextResourceVersion();
        var update = _commands.Claim;
        update.BindText(1, key.Namespace);
        update.BindText(2, key.Id);
        update.BindText(3, node);
        update.BindInt64(4, rv);
        update.Execute();
        var claimed = SelectForWrite(key)!;
        return new WriteOutcome(claimed, new StoreEvent(StoreEventType.Modified, claimed), _selectedRow, rv, _selectedRowId);
    }

    private WriteOutcome ApplyMarkForDeletion(VmKey key, DateTimeOffset now)
    {
        var current = SelectForWrite(key) ?? throw new NotFoundException(key);
        if (current.IsDeleting)
        {
            return new WriteOutcome(current, null);
        }

        var rv = NextResourceVersion();
        var update = _commands.MarkForDeletion;
        update.BindInt64(1, _selectedRowId);
        Span<byte> at = stackalloc byte[64];
        update.BindUtf8(3, at[..FormatTime(now, at)]);
        update.BindInt64(4, rv);
        update.Execute();
        var marked = current with { DeletionRequestedAt = now, ResourceVersion = FormatVersion(rv) };
        return new WriteOutcome(marked, new StoreEvent(StoreEventType.Modified, marked), _selectedRow, rv, _selectedRowId);
    }

    private WriteOutcome ApplyRemove(VmKey key)
    {
        var current = SelectForWrite(key);
        if (current is null)
        {
            return new WriteOutcome(null, null);
        }

        var delete = _commands.Delete;
        delete.BindInt64(1, _selectedRowId);
        delete.Execute();

        // Like etcd, a delete takes a revision of its own, so event versions grow strictly in commit order.
        var removed = current with { ResourceVersion = FormatVersion(NextResourceVersion()) };
        return new WriteOutcome(null, new StoreEvent(StoreEventType.Deleted, removed));
    }

    private enum WriteKind
    {
        Create,
        UpdateSpec,
        UpdateStatus,
        Claim,
        MarkForDeletion,
        Remove,
    }

    /// <summary>
    /// One queued write: what to do and its arguments in one object (issue 15, sixth pass: a closure, its delegate and an
    /// async method's state per write before). Only the writer thread touches it once it is queued.
    /// </summary>
    private sealed class PendingWrite : BackgroundWriteWait.IQueuedWrite
    {
        private bool _done;

        private PendingWrite(WriteKind kind, VmKey key)
        {
            Kind = kind;
            Key = key;
        }

        public WriteKind Kind { get; }

        public VmKey Key { get; }

        public MicroVmSpec? Spec { get; private init; }

        public JsonColumn SpecJson { get; private init; }

        public MicroVmStatus? Status { get; private init; }

        public JsonColumn StatusJson { get; private init; }

        public string? Uid { get; private init; }

        public string? ExpectedVersion { get; private init; }

        public string? ClaimNode { get; private init; }

        public DateTimeOffset Now { get; private init; }

        public CancellationToken Token { get; set; }

        /// <summary>A write an API request waits for (a Create, a spec change, a delete), not the reconciler's.</summary>
        public bool IsRequest => Kind is WriteKind.Create or WriteKind.UpdateSpec or WriteKind.MarkForDeletion;

        /// <summary>When the caller queued it (Stopwatch ticks), for <see cref="WriteQueued"/>.</summary>
        public long Enqueued { get; } = Stopwatch.GetTimestamp();

        public TaskCompletionSource<MicroVm> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public static PendingWrite Create(MicroVmSpec spec, JsonColumn specJson, string uid, DateTimeOffset now) =>
            new(WriteKind.Create, new VmKey(spec.Namespace, spec.Id)) { Spec = spec, SpecJson = specJson, Uid = uid, Now = now };

        public static PendingWrite UpdateSpec(VmKey key, MicroVmSpec spec, JsonColumn specJson, string expectedVersion) =>
            new(WriteKind.UpdateSpec, key) { Spec = spec, SpecJson = specJson, ExpectedVersion = expectedVersion };

        public static PendingWrite UpdateStatus(VmKey key, MicroVmStatus status, JsonColumn statusJson, string expectedVersion, string? claimNode) =>
            new(WriteKind.UpdateStatus, key) { Status = status, StatusJson = statusJson, ExpectedVersion = expectedVersion, ClaimNode = claimNode };

        public static PendingWrite Claim(VmKey key, string node) => new(WriteKind.Claim, key) { ClaimNode = node };

        public static PendingWrite MarkForDeletion(VmKey key, DateTimeOffset now) => new(WriteKind.MarkForDeletion, key) { Now = now };

        public static PendingWrite Remove(VmKey key) => new(WriteKind.Remove, key);

        /// <summary>The outcome goes to the caller, and the JSON buffers back to the pool (once: a write may be retried before it ends).</summary>
        public void Succeed(MicroVm? result)
        {
            Release();
            Completion.TrySetResult(result!); // null only for Remove, whose caller sees a plain Task
        }

        public void Fail(Exception error)
        {
            Release();
            Completion.TrySetException(error);
        }

        public void Release()
        {
            if (!_done)
            {
                _done = true;
                SpecJson.Release();
                StatusJson.Release();
            }
        }
    }

    /// <summary>What a write returns to its caller and what watchers see (null: nothing changed).</summary>
    /// <param name="Text">The hashes of the row's spec and status JSON after the write, for <see cref="RecentRecords"/>; null: not known.</param>
    /// <param name="Version">The version written, with <paramref name="Text"/>.</param>
    /// <param name="RowId">The row's rowid, with <paramref name="Text"/>.</param>
    private readonly record struct WriteOutcome(MicroVm? Result, StoreEvent? Event, RowHash? Text = null, long Version = 0, long RowId = 0);

    /// <summary>
    /// Prepared once on the writer connection and reused: SQLite then parses each statement only once. Used through
    /// SQLite's own API (issue 15, sixth pass): parameters bound by position from spans, the JSON as the UTF-8 bytes it
    /// is stored as, so a write allocates nothing here (through <see cref="SqliteCommand"/> each execution made a reader,
    /// a binder object and a UTF-8 copy of the name and of each text value per parameter, and boxed every integer). The
    /// statements run inside the transactions <see cref="SqliteConnection.BeginTransaction(bool)"/> begins on the same
    /// connection; errors are thrown as the same <see cref="SqliteException"/>s.
    /// </summary>
    internal sealed class WriterCommands : IDisposable
    {
        private readonly sqlite3 _db;
        private readonly WriterStatement _begin;
        private readonly WriterStatement _commit;
        private readonly WriterStatement _rollback;
        private readonly WriterStatement _readCounter;
        private readonly WriterStatement _writeCounter;

        public WriterCommands(SqliteConnection connection)
        {
            var db = connection.Handle ?? throw new InvalidOperationException("the writer connection is not open");
            _db = db;

            // The transaction statements prepared too (issue 15, seventh pass): BeginTransaction and Commit parsed
            // "BEGIN IMMEDIATE;" and "COMMIT;" again on every commit through a command, a reader and a transaction
            // object.
            _begin = new(db, "BEGIN IMMEDIATE;");
            _commit = new(db, "COMMIT;");
            _rollback = new(db, "ROLLBACK;");
            _readCounter = new(db, "SELECT value FROM meta WHERE key = 'resource_version';");
            _writeCounter = new(db, "UPDATE meta SET value = ?1 WHERE key = 'resource_version';");
            SelectByKey = new(db, SelectByKeySql);
            Insert = new(
                db,
                """
                INSERT INTO microvms (namespace, id, uid, spec, status, generation, resource_version, created_at)
                VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7)
                ON CONFLICT (namespace, id) DO NOTHING;
                """);
            UpdateSpec = new(db, UpdateSpecSql);
            UpdateStatus = new(db, UpdateStatusSql);
            ReadClaim = new(db, "SELECT claimed_node FROM microvms WHERE namespace = ?1 AND id = ?2;");
            Claim = new(db, "UPDATE microvms SET claimed_node = ?3, resource_version = ?4 WHERE namespace = ?1 AND id = ?2;");
            ClaimWithStatus = new(db, ClaimWithStatusSql);
            SelectWritten = new(db, SelectWrittenSql);
            MarkForDeletion = new(db, MarkForDeletionSql);
            Delete = new(db, DeleteSql);
        }

        /// <summary>The row a write reads first; its rowid (column 8) is where the write that follows goes.</summary>
        internal const string SelectByKeySql = $"SELECT {Columns}, rowid FROM microvms WHERE namespace = ?1 AND id = ?2;";

        // Issue 15, ninth pass: the writes that follow SelectForWrite find their row by rowid (?1; ?2 is unused, the other
        // parameters kept their numbers), not through the (namespace, id) index a second time. A status write (the
        // Running load's third write) changes no indexed column, so it writes the table's page and no index page.
        internal const string UpdateSpecSql = "UPDATE microvms SET spec = ?3, generation = ?4, resource_version = ?5 WHERE rowid = ?1;";

        internal const string UpdateStatusSql = "UPDATE microvms SET status = ?3, resource_version = ?4 WHERE rowid = ?1;";

        internal const string ClaimWithStatusSql = "UPDATE microvms SET claimed_node = ?5, status = ?3, resource_version = ?4 WHERE rowid = ?1;";

        // Issue 15, thirteenth pass: the row of a record the writer listed, by rowid, only while it still has that version
        // (?2) and key (?3, ?4); its spec to compare with the listed one. A status write then updates it by rowid.
        internal const string SelectWrittenSql = "SELECT spec FROM microvms WHERE rowid = ?1 AND resource_version = ?2 AND namespace = ?3 AND id = ?4;";

        internal const string MarkForDeletionSql = "UPDATE microvms SET deletion_requested_at = ?3, resource_version = ?4 WHERE rowid = ?1;";

        internal const string DeleteSql = "DELETE FROM microvms WHERE rowid = ?1;";

        public WriterStatement SelectByKey { get; }

        public WriterStatement Insert { get; }

        public WriterStatement UpdateSpec { get; }

        public WriterStatement UpdateStatus { get; }

        public WriterStatement ReadClaim { get; }

        public WriterStatement Claim { get; }

        public WriterStatement ClaimWithStatus { get; }

        public WriterStatement SelectWritten { get; }

        public WriterStatement MarkForDeletion { get; }

        public WriterStatement Delete { get; }

        /// <summary>
        /// Microsoft.Data.Sqlite waited for a lock held by another process in its own retry loop; SQLite's busy handler
        /// now does that wait, for as long.
        /// </summary>
        public void UseBusyTimeout(TimeSpan timeout) => raw.sqlite3_busy_timeout(_db, (int)Math.Min(int.MaxValue, timeout.TotalMilliseconds));

        /// <summary>The rowid of the row the last INSERT on this connection added.</summary>
        public long LastInsertRowId => raw.sqlite3_last_insert_rowid(_db);

        public void Begin() => _begin.Execute();

        public void Commit() => _commit.Execute();

        /// <summary>Undoes the open transaction, if SQLite has not already ended it on its own.</summary>
        public void Rollback()
        {
            if (raw.sqlite3_get_autocommit(_db) == 0)
            {
                _rollback.Execute();
            }
        }

        public long ReadCounter()
        {
            try
            {
                return _readCounter.Step() ? _readCounter.Int64(0) : throw new StoreException("the meta table has no resource_version row");
            }
            finally
            {
                _readCounter.Reset();
            }
        }

        public void WriteCounter(long value)
        {
            _writeCounter.BindInt64(1, value);
            _writeCounter.Execute();
        }

        public void Dispose()
        {
            foreach (var statement in (WriterStatement[])[_begin, _commit, _rollback, _readCounter, _writeCounter, SelectByKey, Insert, UpdateSpec, UpdateStatus, ReadClaim, Claim, ClaimWithStatus, SelectWritten, MarkForDeletion, Delete])
            {
                statement.Dispose();
            }
        }
    }
}

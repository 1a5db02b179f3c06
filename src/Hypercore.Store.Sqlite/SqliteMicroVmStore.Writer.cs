using System.Diagnostics;
using System.Globalization;
using Hypercore.MicroVms;
using Microsoft.Data.Sqlite;

namespace Hypercore.Store.Sqlite;

public sealed partial class SqliteMicroVmStore
{
    private async Task<MicroVm?> EnqueueAsync(Func<WriteOutcome> apply, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var write = new PendingWrite(apply, cancellationToken);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0 || !_writes.Writer.TryWrite(write), this);

        // Not WaitAsync(cancellationToken): once the write is in a transaction its outcome must be reported.
        return await write.Completion.Task;
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

    /// <summary>Blocks the writer thread until a write is queued; false once the queue is closed and empty.</summary>
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

            while (batch.Count < _options.MaxBatchSize && reader.TryRead(out var write))
            {
                batch.Add(write);
            }

            try
            {
                CommitBatch(batch, retry);
            }
            catch (Exception ex)
            {
                // CommitBatch handles its own failures; this is a last guard so that no caller waits forever.
                foreach (var write in batch)
                {
                    write.Completion.TrySetException(ex);
                }
            }
        }
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
            _transaction = _writer.BeginTransaction(deferred: false);
            _commands.Enlist(_transaction);

            // Read the counter inside the write lock rather than trusting memory, so versions stay unique even if
            // another process wrote to the file in between.
            var first = Convert.ToInt64(_commands.ReadCounter.ExecuteScalar(), CultureInfo.InvariantCulture);
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
                    outcomes[i] = write.Apply();
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
                    write.Completion.TrySetException(error);
                    var others = batch.Where((_, j) => j != i).Concat(retry).ToList();
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
                _commands.WriteCounter.Parameters["$v"].Value = _batchResourceVersion;
                _commands.WriteCounter.ExecuteNonQuery();
            }

            _transaction.Commit();
        }
        catch (Exception ex)
        {
            Rollback();
            var error = ex is SqliteException sqlite ? Translate(sqlite, "committing") : new StoreException($"sqlite store {_path}: commit failed: {ex.Message}", ex);
            LogCommitFailed(batch.Count, ex.Message);
            foreach (var write in batch)
            {
                write.Completion.TrySetException(error);
            }

            return;
        }
        finally
        {
            _transaction?.Dispose();
            _transaction = null;
        }

        CommitDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
        CommitBatchSize.Record(batch.Count);

        // Durable now. Remember what was written (before anyone can read it back), then publish first so a caller that
        // reacts to its own write finds the event already queued.
        for (var i = 0; i < batch.Count; i++)
        {
            if (failures[i] is null && outcomes[i].Event is { } ev)
            {
                Remember(ev, outcomes[i].Text);
            }
        }

        for (var i = 0; i < batch.Count; i++)
        {
            if (failures[i] is null && outcomes[i].Event is { } ev)
            {
                _hub.Publish(ev);
            }
        }

        for (var i = 0; i < batch.Count; i++)
        {
            if (failures[i] is { } failure)
            {
                batch[i].Completion.TrySetException(failure);
            }
            else
            {
                batch[i].Completion.TrySetResult(outcomes[i].Result);
            }
        }
    }

    private void Rollback()
    {
        try
        {
            _transaction?.Rollback();
        }
        catch (SqliteException)
        {
            // SQLite may already have rolled back on its own (e.g. after an I/O error); nothing is left to undo.
        }
        catch (InvalidOperationException)
        {
            // Already completed.
        }
    }

    private long NextResourceVersion() => ++_batchResourceVersion;

    private MicroVm? SelectForWrite(VmKey key, MicroVmStatus? replacingStatus = null)
    {
        var command = _commands.SelectByKey;
        command.Parameters["$ns"].Value = key.Namespace;
        command.Parameters["$id"].Value = key.Id;
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }

        _selectedRow = new RowText(reader.GetString(1), reader.GetString(2));
        return ReadRecord(reader, key, _selectedRow, replacingStatus);
    }

    private WriteOutcome ApplyCreate(MicroVmSpec spec, string specJson, string statusJson, string uid, DateTimeOffset now)
    {
        var rv = NextResourceVersion();
        var command = _commands.Insert;
        command.Parameters["$ns"].Value = spec.Namespace;
        command.Parameters["$id"].Value = spec.Id;
        command.Parameters["$uid"].Value = uid;
        command.Parameters["$spec"].Value = specJson;
        command.Parameters["$status"].Value = statusJson;
        command.Parameters["$rv"].Value = rv;
        command.Parameters["$created"].Value = FormatTime(now);
        if (command.ExecuteNonQuery() == 0)
        {
            _batchResourceVersion--; // nothing written: give the version back so the sequence has no gap
            throw new AlreadyExistsException(new VmKey(spec.Namespace, spec.Id));
        }

        var created = new MicroVm
        {
            Uid = uid,
            Spec = spec,
            Generation = 1,
            ResourceVersion = FormatVersion(rv),
            CreatedAt = now,
            Status = MicroVmStatus.Initial,
        };
        return new WriteOutcome(created, new StoreEvent(StoreEventType.Added, created), new RowText(specJson, statusJson));
    }

    private WriteOutcome ApplyUpdateSpec(VmKey key, MicroVmSpec spec, string specJson, string expectedResourceVersion)
    {
        var current = SelectForWrite(key) ?? throw new NotFoundException(key);
        if (current.ResourceVersion != expectedResourceVersion)
        {
            throw new ConflictException(key);
        }

        var generation = current.Spec.Equals(spec) ? current.Generation : current.Generation + 1;
        var rv = NextResourceVersion();
        var command = _commands.UpdateSpec;
        command.Parameters["$ns"].Value = key.Namespace;
        command.Parameters["$id"].Value = key.Id;
        command.Parameters["$spec"].Value = specJson;
        command.Parameters["$generation"].Value = generation;
        command.Parameters["$rv"].Value = rv;
        command.ExecuteNonQuery();
        var updated = current with { Spec = spec, Generation = generation, ResourceVersion = FormatVersion(rv) };
        return new WriteOutcome(updated, new StoreEvent(StoreEventType.Modified, updated), new RowText(specJson, _selectedRow.StatusJson));
    }

    /// <summary>
    /// Replaces the status; with <paramref name="claimNode"/> also claims the VM for that node in the same UPDATE, so in
    /// one commit: durable together or not at all.
    /// </summary>
    private WriteOutcome ApplyUpdateStatus(VmKey key, MicroVmStatus status, string statusJson, string expectedResourceVersion, string? claimNode = null)
    {
        var current = SelectForWrite(key, replacingStatus: status) ?? throw new NotFoundException(key);
        if (current.ResourceVersion != expectedResourceVersion)
        {
            throw new ConflictException(key);
        }

        var rv = NextResourceVersion();
        var command = claimNode is null ? _commands.UpdateStatus : _commands.ClaimWithStatus;
        command.Parameters["$ns"].Value = key.Namespace;
        command.Parameters["$id"].Value = key.Id;
        command.Parameters["$status"].Value = statusJson;
        command.Parameters["$rv"].Value = rv;
        if (claimNode is not null)
        {
            command.Parameters["$node"].Value = claimNode;
        }

        command.ExecuteNonQuery();
        var updated = current with { Status = status, Claimed = current.Claimed || claimNode is not null, ResourceVersion = FormatVersion(rv) };
        return new WriteOutcome(updated, new StoreEvent(StoreEventType.Modified, updated), new RowText(_selectedRow.SpecJson, statusJson));
    }

    private WriteOutcome ApplyClaim(VmKey key, string node)
    {
        var command = _commands.ReadClaim;
        command.Parameters["$ns"].Value = key.Namespace;
        command.Parameters["$id"].Value = key.Id;
        string? claimedBy;
        using (var reader = command.ExecuteReader())
        {
            if (!reader.Read())
            {
                throw new NotFoundException(key);
            }

            claimedBy = reader.IsDBNull(0) ? null : reader.GetString(0);
        }

        if (claimedBy == node)
        {
            return new WriteOutcome(SelectForWrite(key), null); // already ours: no write, no event
        }

        var rv = NextResourceVersion();
        var update = _commands.Claim;
        update.Parameters["$ns"].Value = key.Namespace;
        update.Parameters["$id"].Value = key.Id;
        update.Parameters["$node"].Value = node;
        update.Parameters["$rv"].Value = rv;
        update.ExecuteNonQuery();
        var claimed = SelectForWrite(key)!;
        return new WriteOutcome(claimed, new StoreEvent(StoreEventType.Modified, claimed), _selectedRow);
    }

    private WriteOutcome ApplyMarkForDeletion(VmKey key, DateTimeOffset now)
    {
        var current = SelectForWrite(key) ?? throw new NotFoundException(key);
        if (current.IsDeleting)
        {
            return new WriteOutcome(current, null);
        }

        var rv = NextResourceVersion();
        var command = _commands.MarkForDeletion;
        command.Parameters["$ns"].Value = key.Namespace;
        command.Parameters["$id"].Value = key.Id;
        command.Parameters["$at"].Value = FormatTime(now);
        command.Parameters["$rv"].Value = rv;
        command.ExecuteNonQuery();
        var marked = current with { DeletionRequestedAt = now, ResourceVersion = FormatVersion(rv) };
        return new WriteOutcome(marked, new StoreEvent(StoreEventType.Modified, marked), _selectedRow);
    }

    private WriteOutcome ApplyRemove(VmKey key)
    {
        var current = SelectForWrite(key);
        if (current is null)
        {
            return new WriteOutcome(null, null);
        }

        var command = _commands.Delete;
        command.Parameters["$ns"].Value = key.Namespace;
        command.Parameters["$id"].Value = key.Id;
        command.ExecuteNonQuery();

        // Like etcd, a delete takes a revision of its own, so event versions grow strictly in commit order.
        var removed = current with { ResourceVersion = FormatVersion(NextResourceVersion()) };
        return new WriteOutcome(null, new StoreEvent(StoreEventType.Deleted, removed));
    }

    private sealed class PendingWrite(Func<WriteOutcome> apply, CancellationToken token)
    {
        public Func<WriteOutcome> Apply { get; } = apply;

        public CancellationToken Token { get; } = token;

        /// <summary>When the caller queued it (Stopwatch ticks), for <see cref="WriteQueued"/>.</summary>
        public long Enqueued { get; } = Stopwatch.GetTimestamp();

        public TaskCompletionSource<MicroVm?> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>What a write returns to its caller and what watchers see (null: nothing changed).</summary>
    /// <param name="Text">The row's spec and status JSON after the write, for <see cref="RecentRecords"/>; null: not known.</param>
    private readonly record struct WriteOutcome(MicroVm? Result, StoreEvent? Event, RowText? Text = null);

    /// <summary>Prepared once on the writer connection and reused: SQLite then parses each statement only once.</summary>
    private sealed class WriterCommands : IDisposable
    {
        public WriterCommands(SqliteConnection connection)
        {
            ReadCounter = Create(connection, "SELECT value FROM meta WHERE key = 'resource_version';");
            WriteCounter = Create(connection, "UPDATE meta SET value = $v WHERE key = 'resource_version';", "$v");
            SelectByKey = Create(connection, $"SELECT {Columns} FROM microvms WHERE namespace = $ns AND id = $id;", "$ns", "$id");
            Insert = Create(
                connection,
                """
                INSERT INTO microvms (namespace, id, uid, spec, status, generation, resource_version, created_at)
                VALUES ($ns, $id, $uid, $spec, $status, 1, $rv, $created)
                ON CONFLICT (namespace, id) DO NOTHING;
                """,
                "$ns", "$id", "$uid", "$spec", "$status", "$rv", "$created");
            UpdateSpec = Create(
                connection,
                "UPDATE microvms SET spec = $spec, generation = $generation, resource_version = $rv WHERE namespace = $ns AND id = $id;",
                "$ns", "$id", "$spec", "$generation", "$rv");
            UpdateStatus = Create(
                connection,
                "UPDATE microvms SET status = $status, resource_version = $rv WHERE namespace = $ns AND id = $id;",
                "$ns", "$id", "$status", "$rv");
            ReadClaim = Create(connection, "SELECT claimed_node FROM microvms WHERE namespace = $ns AND id = $id;", "$ns", "$id");
            Claim = Create(
                connection,
                "UPDATE microvms SET claimed_node = $node, resource_version = $rv WHERE namespace = $ns AND id = $id;",
                "$ns", "$id", "$node", "$rv");
            ClaimWithStatus = Create(
                connection,
                "UPDATE microvms SET claimed_node = $node, status = $status, resource_version = $rv WHERE namespace = $ns AND id = $id;",
                "$ns", "$id", "$node", "$status", "$rv");
            MarkForDeletion = Create(
                connection,
                "UPDATE microvms SET deletion_requested_at = $at, resource_version = $rv WHERE namespace = $ns AND id = $id;",
                "$ns", "$id", "$at", "$rv");
            Delete = Create(connection, "DELETE FROM microvms WHERE namespace = $ns AND id = $id;", "$ns", "$id");
        }

        public SqliteCommand ReadCounter { get; }

        public SqliteCommand WriteCounter { get; }

        public SqliteCommand SelectByKey { get; }

        public SqliteCommand Insert { get; }

        public SqliteCommand UpdateSpec { get; }

        public SqliteCommand UpdateStatus { get; }

        public SqliteCommand ReadClaim { get; }

        public SqliteCommand Claim { get; }

        public SqliteCommand ClaimWithStatus { get; }

        public SqliteCommand MarkForDeletion { get; }

        public SqliteCommand Delete { get; }

        private IEnumerable<SqliteCommand> All =>
            [ReadCounter, WriteCounter, SelectByKey, Insert, UpdateSpec, UpdateStatus, ReadClaim, Claim, ClaimWithStatus, MarkForDeletion, Delete];

        public void Enlist(SqliteTransaction transaction)
        {
            foreach (var command in All)
            {
                command.Transaction = transaction;
            }
        }

        public void Dispose()
        {
            foreach (var command in All)
            {
                command.Dispose();
            }
        }

        private static SqliteCommand Create(SqliteConnection connection, string sql, params string[] parameters)
        {
            var command = connection.CreateCommand();
            command.CommandText = sql;
            foreach (var name in parameters)
            {
                command.Parameters.Add(new SqliteParameter { ParameterName = name });
            }

            return command;
        }
    }
}

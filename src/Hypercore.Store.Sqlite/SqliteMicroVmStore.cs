using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using Hypercore.MicroVms;
using Hypercore.Telemetry;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// The standalone desired-state store: one SQLite file in WAL mode with <c>synchronous=FULL</c>, so a write is
/// on disk before its call returns and survives a crash of the process or the machine.
/// </summary>
/// <remarks>
/// <para>
/// Writes go through one writer connection owned by a single writer loop. Writes that arrive while a commit is
/// in flight are committed together in the next transaction (group commit): each write still succeeds or fails
/// on its own and is acknowledged only after the commit that contains it is durable, but many writers share one
/// fsync. Reads use a small pool of separate connections and never wait for writes.
/// </para>
/// <para>
/// <c>resource_version</c> is a store-wide counter kept in the <c>meta</c> table, like etcd's revision: every
/// write (including a delete) takes the next value, so versions are unique and grow in commit order.
/// </para>
/// <para>
/// A cancelled write either never happened or is reported as done: cancellation is honoured only before the
/// write joins a transaction, so <see cref="OperationCanceledException"/> always means "not written".
/// </para>
/// </remarks>
public sealed partial class SqliteMicroVmStore : IMicroVmStore, IAsyncDisposable, IDisposable
{
    internal const int SchemaVersion = 1;

    /// <summary>Keys per generation of <see cref="RecentRecords"/>: enough for the writes of a burst of Creates.</summary>
    private const int RecentRecordsPerGeneration = 4096;

    private const string Columns =
        "uid, spec, status, generation, resource_version, created_at, deletion_requested_at, claimed_node";

    private static readonly Histogram<double> CommitDuration = HypercoreTelemetry.Meter.CreateHistogram<double>(
        "hypercore.store.commit.duration", "s", "Time of one SQLite commit (one fsync), for a group of writes.");

    private static readonly Histogram<int> CommitBatchSize = HypercoreTelemetry.Meter.CreateHistogram<int>(
        "hypercore.store.commit.writes", "{write}", "Writes committed together in one SQLite transaction.");

    private static readonly Histogram<double> WriteQueued = HypercoreTelemetry.Meter.CreateHistogram<double>(
        "hypercore.store.write.queued", "s", "Time a write waited in the writer's queue before its transaction began (the commit before it, mostly).");

    private static readonly JsonColumn InitialStatusJson = JsonColumn.Fixed(JsonSerializer.SerializeToUtf8Bytes(MicroVmStatus.Initial, StoreJsonContext.Default.MicroVmStatus));

    private readonly SqliteStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<SqliteMicroVmStore> _log;
    private readonly string _path;
    private readonly SqliteConnection _writer;
    private readonly WriterCommands _commands;
    private readonly ReadConnectionPool _readers;
    private readonly WatchHub _hub;
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<SqliteConnection, SqliteCommand> _getByKey = new();
    // AllowSynchronousContinuations (issue 15, tenth pass): the only reader is the writer thread, blocked in
    // WaitForWrites; a write queued while it sleeps wakes it from the queuing thread. Without it the channel woke the
    // writer through a thread-pool work item, which under load waited in the pool's global queue behind the answers
    // and the reconciler's work before the writer could even start the next commit.
    private readonly Channel<PendingWrite> _writes =
        Channel.CreateUnbounded<PendingWrite>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = true });
    private readonly Task _writerLoop;
    private readonly RecentRecords _recent = new(RecentRecordsPerGeneration);
    private int _disposed;

    // Only the writer loop touches these while a batch runs.
    private long _batchResourceVersion;
    private RowHash _selectedRow; // the text of the row SelectForWrite read last
    private WalCheckpointer? _checkpointer; // made by the writer before its first commit

    public SqliteMicroVmStore(IOptions<SqliteStoreOptions> options, TimeProvider time, ILogger<SqliteMicroVmStore> log)
    {
        _options = options.Value;
        var validation = new SqliteStoreOptionsValidator().Validate(null, _options);
        if (validation.Failed)
        {
            throw new OptionsValidationException(nameof(SqliteStoreOptions), typeof(SqliteStoreOptions), validation.Failures);
        }

        _time = time;
        _log = log;
        _path = Path.GetFullPath(_options.DatabasePath);
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);

        // The writer (and the checkpointer, which takes its connection string) write the WAL through WalGatheringVfs:
        // one write(2) per commit instead of two per frame. The readers open the plain path (they never write the WAL).
        var builder = new SqliteConnectionStringBuilder
        {
            DataSource = _options.GatherWalWrites ? WalGatheringVfs.UriFor(_path) : _path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = false,
            DefaultTimeout = Math.Max(1, (int)Math.Ceiling(_options.BusyTimeout.TotalSeconds)),
        };
        _writer = new SqliteConnection(builder.ToString());
        try
        {
            var (journalMode, resourceVersion, count) = Open(_writer);
            _commands = new WriterCommands(_writer);
            LogOpened(_path, SchemaVersion, journalMode, resourceVersion, count);
        }
        catch (SqliteException ex)
        {
            _writer.Dispose();
            throw Translate(ex, "opening the database");
        }
        catch
        {
            _writer.Dispose();
            throw;
        }

        builder.Mode = SqliteOpenMode.ReadWrite;
        builder.DataSource = _path;
        _readers = new ReadConnectionPool(builder.ToString(), Math.Max(4, Environment.ProcessorCount * 2));
        _hub = new WatchHub(_options.WatchBufferSize, LogWatcherOverflow);
        _backgroundWait = new BackgroundWriteWait(_options.BackgroundWriteWait, _options.BackgroundWriteWaitRecent);
        _writerLoop = StartWriterThread();
    }

    public string Name => "sqlite";

    /// <summary>The database file in use (absolute).</summary>
    public string DatabasePath => _path;

    // ---------------------------------------------------------------- reads

    public Task<MicroVm?> GetAsync(VmKey key, CancellationToken cancellationToken = default) =>
        ReadAsync("reading", key, (Store: this, Key: key), static (connection, s) => s.Store.ReadByKey(connection, s.Key), cancellationToken);

    private MicroVm? ReadByKey(SqliteConnection connection, VmKey key)
    {
        var command = GetByKeyCommand(connection);
        command.Parameters[0].Value = key.Namespace;
        command.Parameters[1].Value = key.Id;
        using var reader = command.ExecuteReader();
        return reader.Read() ? ReadRecord(reader, key, new RowText(reader.GetString(1), reader.GetString(2))) : null;
    }

    /// <summary>
    /// The point read by key, prepared once per reader connection (issue 15: every reconcile reads its record, and
    /// parsing the SQL again each time was a visible share of a 100,000-record resync). The statement is finalized
    /// with its connection. A connection is used by one reader at a time, so its command is too.
    /// </summary>
    private SqliteCommand GetByKeyCommand(SqliteConnection connection) =>
        _getByKey.GetValue(connection, static c =>
        {
            var command = c.CreateCommand();
            command.CommandText = $"SELECT {Columns} FROM microvms WHERE namespace = $ns AND id = $id;";
            command.Parameters.Add("$ns", SqliteType.Text);
            command.Parameters.Add("$id", SqliteType.Text);
            command.Prepare();
            return command;
        });

    public Task<MicroVm?> GetByUidAsync(string uid, CancellationToken cancellationToken = default)
    {
        return ReadAsync("reading uid " + uid, connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT {Columns} FROM microvms WHERE uid = $uid;";
            command.Parameters.AddWithValue("$uid", uid);
            using var reader = command.ExecuteReader();
            return reader.Read() ? ReadRecord(reader) : null;
        }, cancellationToken);
    }

    public Task<IReadOnlyList<MicroVm>> ListAsync(string? @namespace = null, CancellationToken cancellationToken = default)
    {
        return ReadAsync("listing", IReadOnlyList<MicroVm> (connection) =>
        {
            using var command = connection.CreateCommand();
            if (@namespace is null)
            {
                command.CommandText = $"SELECT {Columns} FROM microvms ORDER BY namespace, id;";
            }
            else
            {
                command.CommandText = $"SELECT {Columns} FROM microvms WHERE namespace = $ns ORDER BY id;";
                command.Parameters.AddWithValue("$ns", @namespace);
            }

            var list = new List<MicroVm>();
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                list.Add(ReadRecord(reader));
            }

            return list;
        }, cancellationToken);
    }

    // ---------------------------------------------------------------- writes

    public Task<MicroVm> CreateAsync(MicroVmSpec spec, CancellationToken cancellationToken = default) =>
        Create(spec, status: null, cancellationToken);

    /// <summary>
    /// One write, one commit (issue 15, claim14): the new row is inserted with this node in <c>claimed_node</c> and
    /// <paramref name="status"/> as its status, so the claim is durable with the record itself.
    /// </summary>
    public Task<MicroVm> CreateClaimedAsync(MicroVmSpec spec, MicroVmStatus status, CancellationToken cancellationToken = default) =>
        status is null
            ? Task.FromException<MicroVm>(new ArgumentNullException(nameof(status)))
            : Create(spec, status, cancellationToken);

    /// <summary>Both Creates: unclaimed and Pending (<paramref name="status"/> null), or claimed by this node with it.</summary>
    private Task<MicroVm> Create(MicroVmSpec spec, MicroVmStatus? status, CancellationToken cancellationToken)
    {
        try
        {
            ArgumentNullException.ThrowIfNull(spec);
            var specJson = JsonColumn.Serialize(spec, StoreJsonContext.Default.MicroVmSpec);
            var statusJson = status is null ? default : JsonColumn.Serialize(status, StoreJsonContext.Default.MicroVmStatus);
            var now = _time.GetUtcNow();

            // A version 7 UUID (issue 15, eighth pass): its hex starts with the time in milliseconds, so new uids sort after
            // the ones before them and the uid index grows at one end (one or two pages written per commit) instead of
            // taking each Create's entry at a random place (one page per Create; a third of the pages a Create wrote).
            // Same 32 hex digits as before; still unique (74 random bits per millisecond, and the column is UNIQUE).
            // Issue 15 (req13): from a per-thread pool of secure random bytes, not a read of the kernel's source per uid.
            var uid = UidSource.ForThisThread.NewVersion7(now);
            return Enqueue(PendingWrite.Create(spec, specJson, uid, now, status, statusJson, status is null ? null : _options.NodeName), cancellationToken);
        }
        catch (Exception ex)
        {
            return Task.FromException<MicroVm>(ex);
        }
    }

    public Task<MicroVm> UpdateSpecAsync(VmKey key, MicroVmSpec spec, string expectedResourceVersion, CancellationToken cancellationToken = default)
    {
        try
        {
            ArgumentNullException.ThrowIfNull(spec);
            ArgumentNullException.ThrowIfNull(expectedResourceVersion);
            if (spec.Namespace != key.Namespace || spec.Id != key.Id)
            {
                throw new ArgumentException($"the spec names {spec.Namespace}/{spec.Id} but the update is for {key}; namespace and id cannot change", nameof(spec));
            }

            var specJson = JsonColumn.Serialize(spec, StoreJsonContext.Default.MicroVmSpec);
            return Enqueue(PendingWrite.UpdateSpec(key, spec, specJson, expectedResourceVersion), cancellationToken);
        }
        catch (Exception ex)
        {
            return Task.FromException<MicroVm>(ex);
        }
    }

    public Task<MicroVm> UpdateStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
        EnqueueStatus(key, status, expectedResourceVersion, claimNode: null, cancellationToken);

    public Task<MicroVm> ClaimAsync(VmKey key, CancellationToken cancellationToken = default) =>
        Enqueue(PendingWrite.Claim(key, _options.NodeName), cancellationToken);

    /// <inheritdoc/>
    public bool ClaimWithStatusIsOneWrite => true;

    /// <summary>One write, one commit (issue 15): the reconciler's claim of a new VM and its Provisioning status.</summary>
    public Task<MicroVm> ClaimWithStatusAsync(VmKey key, MicroVmStatus status, string expectedResourceVersion, CancellationToken cancellationToken = default) =>
        EnqueueStatus(key, status, expectedResourceVersion, claimNode: _options.NodeName, cancellationToken);

    public Task<MicroVm> MarkForDeletionAsync(VmKey key, CancellationToken cancellationToken = default) =>
        Enqueue(PendingWrite.MarkForDeletion(key, _time.GetUtcNow()), cancellationToken);

    public Task RemoveAsync(VmKey key, CancellationToken cancellationToken = default) =>
        Enqueue(PendingWrite.Remove(key), cancellationToken);

    private Task<MicroVm> EnqueueStatus(VmKey key, MicroVmStatus status, string expectedResourceVersion, string? claimNode, CancellationToken cancellationToken)
    {
        try
        {
            ArgumentNullException.ThrowIfNull(status);
            ArgumentNullException.ThrowIfNull(expectedResourceVersion);
            var statusJson = JsonColumn.Serialize(status, StoreJsonContext.Default.MicroVmStatus);
            return Enqueue(PendingWrite.UpdateStatus(key, status, statusJson, expectedResourceVersion, claimNode), cancellationToken);
        }
        catch (Exception ex)
        {
            return Task.FromException<MicroVm>(ex);
        }
    }

    // ---------------------------------------------------------------- watch

    /// <summary>
    /// Subscribes at once (not at the first MoveNext), so a caller may watch, then list, and miss nothing. The
    /// stream ends when the store is disposed; cancelling <paramref name="cancellationToken"/> or disposing the
    /// enumerator unsubscribes.
    /// </summary>
    public IAsyncEnumerable<StoreEvent> WatchAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        return new WatchStream(_hub, cancellationToken);
    }

    /// <summary>Number of open watch streams (for tests and diagnostics).</summary>
    internal int WatcherCount => _hub.Count;

    // ---------------------------------------------------------------- lifetime

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _writes.Writer.TryComplete();
        await _writerLoop; // commits whatever was already queued
        _hub.CompleteAll();
        _checkpointer?.Dispose(); // before the writer closes: its close, the last, checkpoints everything and removes the WAL
        _readers.Dispose();
        _commands.Dispose();
        await _writer.DisposeAsync();
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    // ---------------------------------------------------------------- opening

    private static (string JournalMode, long ResourceVersion, long Count) Open(SqliteConnection connection)
    {
        connection.Open();

        // WAL: readers do not block the writer; FULL: the WAL is fsynced at every commit, so an acknowledged
        // write survives power loss, not just a crash of this process.
        var journalMode = Convert.ToString(Scalar(connection, "PRAGMA journal_mode = WAL;"), CultureInfo.InvariantCulture) ?? "";
        if (!journalMode.Equals("wal", StringComparison.OrdinalIgnoreCase))
        {
            throw new StoreException($"the file system refused SQLite's WAL journal mode (got \"{journalMode}\"); put the database on a local disk");
        }

        Execute(connection, "PRAGMA synchronous = FULL;");

        using var transaction = connection.BeginTransaction(deferred: false);
        var hasMeta = Convert.ToInt64(Scalar(connection, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta';"), CultureInfo.InvariantCulture) > 0;
        if (hasMeta)
        {
            var version = Convert.ToInt64(Scalar(connection, "SELECT value FROM meta WHERE key = 'schema_version';") ?? 0L, CultureInfo.InvariantCulture);
            if (version > SchemaVersion)
            {
                throw new StoreException($"the database has schema version {version}, newer than this build understands ({SchemaVersion}); use a newer Hypercore or another DatabasePath");
            }
        }

        Execute(connection, """
            CREATE TABLE IF NOT EXISTS meta (
                key   TEXT PRIMARY KEY NOT NULL,
                value INTEGER NOT NULL
            ) STRICT;
            CREATE TABLE IF NOT EXISTS microvms (
                namespace             TEXT NOT NULL,
                id                    TEXT NOT NULL,
                uid                   TEXT NOT NULL UNIQUE,
                spec                  TEXT NOT NULL,
                status                TEXT NOT NULL,
                generation            INTEGER NOT NULL,
                resource_version      INTEGER NOT NULL,
                created_at            TEXT NOT NULL,
                deletion_requested_at TEXT,
                claimed_node          TEXT,
                PRIMARY KEY (namespace, id)
            ) STRICT;
            INSERT OR IGNORE INTO meta (key, value) VALUES ('resource_version', 0);
            """);
        Execute(connection, $"INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', {SchemaVersion});");
        var resourceVersion = Convert.ToInt64(Scalar(connection, "SELECT value FROM meta WHERE key = 'resource_version';"), CultureInfo.InvariantCulture);
        var count = Convert.ToInt64(Scalar(connection, "SELECT count(*) FROM microvms;"), CultureInfo.InvariantCulture);
        transaction.Commit();
        return (journalMode, resourceVersion, count);
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    // ---------------------------------------------------------------- row mapping

    /// <param name="replacingStatus">The status a write is about to store: the stored one is then not parsed.</param>
    /// <param name="text">The row's spec and status columns when already read.</param>
    private static MicroVm ReadRecord(SqliteDataReader reader, MicroVmStatus? replacingStatus = null, RowText? text = null) => new()
    {
        Uid = reader.GetString(0),
        Spec = JsonSerializer.Deserialize(text?.SpecJson ?? reader.GetString(1), StoreReadJsonContext.Default.MicroVmSpec)
            ?? throw new JsonException("spec column holds null"),
        Status = replacingStatus ?? JsonSerializer.Deserialize(text?.StatusJson ?? reader.GetString(2), StoreReadJsonContext.Default.MicroVmStatus)
            ?? throw new JsonException("status column holds null"),
        Generation = reader.GetInt64(3),
        ResourceVersion = FormatVersion(reader.GetInt64(4)),
        CreatedAt = ParseTime(reader.GetString(5)),
        DeletionRequestedAt = reader.IsDBNull(6) ? null : ParseTime(reader.GetString(6)),
        Claimed = !reader.IsDBNull(7),
    };

    /// <summary>
    /// A row of a known key: when its version is one this writer committed, the record that write produced (no JSON
    /// parsed); otherwise parsed like any row.
    /// </summary>
    private MicroVm ReadRecord(SqliteDataReader reader, VmKey key, RowText text, MicroVmStatus? replacingStatus = null)
    {
        if (_recent.Find(key, reader.GetInt64(4), text) is { } known)
        {
            return replacingStatus is null ? known : known with { Status = replacingStatus };
        }

        return ReadRecord(reader, replacingStatus, text);
    }

    /// <summary>Called by the writer after a commit, for each change in it.</summary>
    private void Remember(StoreEvent ev, WriteOutcome outcome)
    {
        if (ev.MicroVm is not { } vm)
        {
            return;
        }

        if (ev.Type == StoreEventType.Deleted || outcome.Text is not { } text)
        {
            _recent.Remove(vm.Key);
        }
        else
        {
            _recent.Put(outcome.Version, vm, text, outcome.RowId);
        }
    }

    private static string FormatVersion(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>The round-trip ("O") form, as UTF-8 into <paramref name="utf8"/> (64 bytes hold it); returns its length.</summary>
    private static int FormatTime(DateTimeOffset value, Span<byte> utf8) =>
        value.TryFormat(utf8, out var written, "O", CultureInfo.InvariantCulture) ? written : throw new InvalidOperationException("a time did not fit its buffer");

    private static DateTimeOffset ParseTime(string value) =>
        DateTimeOffset.ParseExact(value, "O", CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);

    /// <summary>
    /// Runs a query on a pooled reader. Microsoft.Data.Sqlite does its work synchronously even in its async
    /// methods, so this does too; failures still arrive through the task, like any async API.
    /// </summary>
    private Task<T> ReadAsync<T>(string what, Func<SqliteConnection, T> query, CancellationToken cancellationToken) =>
        ReadAsync(what, subject: null, query, static (connection, query) => query(connection), cancellationToken);

    /// <param name="verb">What the read does, for errors: "<paramref name="verb"/> <paramref name="subject"/>".</param>
    /// <param name="state">What <paramref name="query"/> needs, so that it can be a static lambda (issue 15, sixth pass:
    /// the reconciler's reads made a closure, its delegate and the error text on every call).</param>
    private Task<T> ReadAsync<TState, T>(string verb, VmKey? subject, TState state, Func<SqliteConnection, TState, T> query, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        try
        {
            return Task.FromResult(Read(verb, subject, state, query));
        }
        catch (Exception ex)
        {
            return Task.FromException<T>(ex);
        }
    }

    /// <inheritdoc cref="ReadAsync{TState, T}"/>
    private T Read<TState, T>(string verb, VmKey? subject, TState state, Func<SqliteConnection, TState, T> query)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        SqliteConnection connection;
        try
        {
            connection = _readers.Rent();
        }
        catch (SqliteException ex)
        {
            throw Translate(ex, What(verb, subject));
        }

        var healthy = false;
        try
        {
            var result = query(connection, state);
            healthy = true;
            return result;
        }
        catch (SqliteException ex)
        {
            throw Translate(ex, What(verb, subject));
        }
        catch (JsonException ex)
        {
            healthy = true;
            throw new StoreException($"sqlite store {_path}: a row is not valid JSON while {What(verb, subject)}: {ex.Message}", ex);
        }
        finally
        {
            if (healthy)
            {
                _readers.Return(connection);
            }
            else
            {
                connection.Dispose();
            }
        }
    }

    private static string What(string verb, VmKey? subject) => subject is { } key ? $"{verb} {key}" : verb;

    /// <summary>Turns a provider error into a <see cref="StoreException"/> that says what to do about it.</summary>
    internal StoreException Translate(SqliteException ex, string what)
    {
        // Primary result codes: https://www.sqlite.org/rescode.html
        var hint = (ex.SqliteErrorCode & 0xFF) switch
        {
            5 or 6 => "the database is locked by another connection or process (is a second daemon using the same file?)",
            8 => "the database file is read-only; check its permissions and those of its directory",
            10 => "an I/O error occurred reading or writing the database file",
            11 or 26 => "the database file is corrupt or not an SQLite database",
            13 => "the disk is full",
            14 => "the database file cannot be opened; check that its directory exists and is writable",
            _ => "SQLite reported an error",
        };
        return new StoreException($"sqlite store {_path}: {what} failed: {hint} ({ex.Message})", ex);
    }

    [LoggerMessage(2001, LogLevel.Information, "SQLite store opened at {Path} (schema {SchemaVersion}, journal {JournalMode}, resource version {ResourceVersion}, {Count} records)")]
    private partial void LogOpened(string path, int schemaVersion, string journalMode, long resourceVersion, long count);

    [LoggerMessage(2002, LogLevel.Warning, "A store watcher fell more than {Capacity} events behind; its backlog was dropped and it was told to resync")]
    private partial void LogWatcherOverflow(int capacity);

    [LoggerMessage(2003, LogLevel.Error, "SQLite commit of {Count} writes failed; none of them was stored: {Message}")]
    private partial void LogCommitFailed(int count, string message);

    /// <summary>WAL checkpoints the background thread ran (tests, diagnostics).</summary>
    internal long BackgroundCheckpoints => Volatile.Read(ref _checkpointer)?.BackgroundCheckpoints ?? 0;

    /// <summary>WAL checkpoints the writer ran itself (tests, diagnostics).</summary>
    internal long WriterCheckpoints => Volatile.Read(ref _checkpointer)?.WriterCheckpoints ?? 0;

    /// <summary>The WAL checkpointer, made by the writer before its first commit; null until then (tests).</summary>
    internal WalCheckpointer? Checkpointer => Volatile.Read(ref _checkpointer);

    /// <summary>Frames the writer's own WAL checkpoints copied, in all (tests, diagnostics).</summary>
    internal long WriterCopiedFrames => Volatile.Read(ref _checkpointer)?.WriterCopiedFrames ?? 0;

    /// <summary>Times the WAL file was emptied after a pause in the writes (tests, diagnostics).</summary>
    internal long WalTruncations => Volatile.Read(ref _checkpointer)?.Truncations ?? 0;

    [LoggerMessage(2005, LogLevel.Warning, "SQLite WAL {What}; the WAL is checkpointed again after a later commit")]
    private partial void LogCheckpointFailed(string what);

    [LoggerMessage(2004, LogLevel.Error, "A SQLite write failed and its transaction was rolled back; {Retried} other writes in it are retried: {Message}")]
    private partial void LogWriteFailed(int retried, string message);
}

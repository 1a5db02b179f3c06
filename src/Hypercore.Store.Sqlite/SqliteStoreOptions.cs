using Microsoft.Extensions.Options;

namespace Hypercore.Store.Sqlite;

/// <summary>Settings of the standalone SQLite store.</summary>
public sealed class SqliteStoreOptions
{
    public const string DefaultDatabasePath = "/var/lib/hypercore/hypercore.db";

    /// <summary>The database file. Its directory is created when missing. Default <see cref="DefaultDatabasePath"/>.</summary>
    public string DatabasePath { get; set; } = DefaultDatabasePath;

    /// <summary>
    /// Recorded as the claiming node by <see cref="IMicroVmStore.ClaimAsync"/>. Should equal the reconciler's node
    /// name. Default: the machine name in lower case.
    /// </summary>
    public string NodeName { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>
    /// Events buffered per watcher. A watcher that falls this far behind loses its backlog and gets one
    /// <see cref="StoreEventType.Resync"/> instead, so a slow reader never blocks writers. Default 1024.
    /// </summary>
    public int WatchBufferSize { get; set; } = 1024;

    /// <summary>
    /// Most writes committed together in one transaction (one fsync). Writes that arrive while a commit is
    /// running are grouped into the next one; a lone request write is never delayed to wait for company (a lone
    /// background write may be, up to <see cref="BackgroundWriteWait"/>, while requests are arriving). Default 512.
    /// </summary>
    public int MaxBatchSize { get; set; } = 512;

    /// <summary>
    /// Longest time a commit of only background writes (the reconciler's claims and status writes) waits for the next
    /// API request's write to share its fsync, while requests are arriving (issue 15, tenth pass). A request write never
    /// waits. Zero: never.
    /// </summary>
    internal TimeSpan BackgroundWriteWait { get; set; } = TimeSpan.FromMilliseconds(1);

    /// <summary>Requests count as arriving while a batch with one was taken within this time; otherwise no wait.</summary>
    internal TimeSpan BackgroundWriteWaitRecent { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Frames not yet copied from the WAL at which the background checkpointer copies them (tests make it small).</summary>
    internal int CheckpointBackgroundFrames { get; set; } = WalCheckpointer.DefaultBackgroundFrames;

    /// <summary>WAL size in frames from which the writer lets the WAL start over, so it stays bounded (tests make it small).</summary>
    internal int CheckpointWriterFrames { get; set; } = WalCheckpointer.DefaultWriterFrames;

    /// <summary>Time without a commit after which the WAL file is emptied (tests make it short).</summary>
    internal TimeSpan CheckpointIdleDelay { get; set; } = WalCheckpointer.DefaultIdleDelay;

    /// <summary>
    /// The writer writes each commit's WAL frames with one write(2) (<see cref="WalGatheringVfs"/>); false: SQLite's
    /// default VFS, two writes per frame (tests and benchmarks compare the two).
    /// </summary>
    internal bool GatherWalWrites { get; set; } = true;

    /// <summary>How long a statement waits for a lock held by another connection or process before failing. Default 10 s.</summary>
    public TimeSpan BusyTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>Fails the daemon at start with a clear message when the store cannot possibly work.</summary>
public sealed class SqliteStoreOptionsValidator : IValidateOptions<SqliteStoreOptions>
{
    public ValidateOptionsResult Validate(string? name, SqliteStoreOptions options)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.DatabasePath))
        {
            errors.Add("Sqlite store: DatabasePath must be set to a file path, e.g. /var/lib/hypercore/hypercore.db");
        }
        else if (Directory.Exists(options.DatabasePath))
        {
            errors.Add($"Sqlite store: DatabasePath \"{options.DatabasePath}\" is a directory; give a file path inside it, e.g. {Path.Combine(options.DatabasePath, "hypercore.db")}");
        }
        else
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(options.DatabasePath));
            if (directory is not null && !Directory.Exists(directory))
            {
                try
                {
                    Directory.CreateDirectory(directory);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    errors.Add($"Sqlite store: cannot create the directory \"{directory}\" for DatabasePath: {ex.Message}");
                }
            }
        }

        if (string.IsNullOrWhiteSpace(options.NodeName))
        {
            errors.Add("Sqlite store: NodeName must not be empty");
        }

        if (options.WatchBufferSize < 2)
        {
            errors.Add($"Sqlite store: WatchBufferSize must be at least 2, got {options.WatchBufferSize}");
        }

        if (options.MaxBatchSize < 1)
        {
            errors.Add($"Sqlite store: MaxBatchSize must be at least 1, got {options.MaxBatchSize}");
        }

        if (options.BusyTimeout <= TimeSpan.Zero)
        {
            errors.Add($"Sqlite store: BusyTimeout must be positive, got {options.BusyTimeout}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

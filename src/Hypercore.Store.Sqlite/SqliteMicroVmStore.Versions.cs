using System.Globalization;
using Hypercore.MicroVms;
using Microsoft.Data.Sqlite;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// The reconciler's version check (issue 15): one primary-key lookup that compares the row's resource version,
/// reading no JSON, so a reconcile can use the informer's already-parsed copy when it is current.
/// </summary>
public sealed partial class SqliteMicroVmStore : IResourceVersionCheck
{
    private const string VersionByKeySql = "SELECT resource_version FROM microvms WHERE namespace = ?1 AND id = ?2;";

    // Issue 15, fifteenth pass: a raw statement per reader connection, not an ADO.NET command (a data reader and two
    // boxed parameter values per call), since every reconcile of a cached record and every poll of a running VM runs it.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<SqliteConnection, ReaderStatement> _versionByKey = new();

    public ValueTask<bool> IsCurrentAsync(VmKey key, string resourceVersion, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(resourceVersion);
        cancellationToken.ThrowIfCancellationRequested();

        // Versions are a store-wide counter: equal numbers mean the same write of the same row.
        if (!long.TryParse(resourceVersion, NumberStyles.None, CultureInfo.InvariantCulture, out var version))
        {
            return ValueTask.FromResult(false);
        }

        var current = Read("checking the version of", key, (Store: this, Key: key), static (connection, s) => s.Store.ReadVersion(connection, s.Key));
        return ValueTask.FromResult(current == version);
    }

    private long ReadVersion(SqliteConnection connection, VmKey key)
    {
        var statement = ReaderStatement.For(_versionByKey, connection, VersionByKeySql);
        try
        {
            statement.BindText(1, key.Namespace);
            statement.BindText(2, key.Id);
            return statement.Step() ? statement.Int64(0) : -1;
        }
        finally
        {
            statement.Reset(); // ends its read: the next check reads the latest commit, and the WAL is not held
        }
    }
}

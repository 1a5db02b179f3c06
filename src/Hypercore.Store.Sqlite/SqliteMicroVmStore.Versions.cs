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
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<SqliteConnection, SqliteCommand> _versionByKey = new();

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
        var command = _versionByKey.GetValue(connection, static c =>
        {
            var command = c.CreateCommand();
            command.CommandText = "SELECT resource_version FROM microvms WHERE namespace = $ns AND id = $id;";
            command.Parameters.Add("$ns", SqliteType.Text);
            command.Parameters.Add("$id", SqliteType.Text);
            command.Prepare();
            return command;
        });
        command.Parameters[0].Value = key.Namespace;
        command.Parameters[1].Value = key.Id;
        using var reader = command.ExecuteReader();
        return reader.Read() ? reader.GetInt64(0) : -1;
    }
}

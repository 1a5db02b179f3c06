using Hypercore.MicroVms;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// The informer's relist in O(changes) (issue 15): the listing reads the key, uid and version columns only, and the
/// spec and status JSON is read and parsed for the rows the caller wants (new or changed ones), not for all 100,000.
/// </summary>
public sealed partial class SqliteMicroVmStore : IVersionListing
{
    public Task<IReadOnlyList<MicroVm>> ListWantedAsync(Func<RecordVersion, bool> wanted, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(wanted);
        return ReadAsync("listing versions", IReadOnlyList<MicroVm> (connection) =>
        {
            // One read transaction for the listing and the reads after it: in WAL mode it reads one snapshot of the
            // database, the one at its first statement, whatever the writer commits meanwhile. A row listed is therefore
            // read at the version listed, and is never found gone.
            using var transaction = connection.BeginTransaction(deferred: true);
            var keys = new List<VmKey>();
            using (var list = connection.CreateCommand())
            {
                list.Transaction = transaction;
                list.CommandText = "SELECT namespace, id, uid, resource_version FROM microvms ORDER BY namespace, id;";
                using var reader = list.ExecuteReader();
                while (reader.Read())
                {
                    var key = new VmKey(reader.GetString(0), reader.GetString(1));
                    if (wanted(new RecordVersion(key, reader.GetString(2), FormatVersion(reader.GetInt64(3)))))
                    {
                        keys.Add(key);
                    }
                }
            }

            var records = new List<MicroVm>(keys.Count);
            if (keys.Count > 0)
            {
                var get = GetByKeyCommand(connection);
                get.Transaction = transaction;
                try
                {
                    foreach (var key in keys)
                    {
                        get.Parameters[0].Value = key.Namespace;
                        get.Parameters[1].Value = key.Id;
                        using var reader = get.ExecuteReader();
                        if (!reader.Read())
                        {
                            throw new StoreException($"sqlite store {_path}: {key} was listed but not found in the same read transaction");
                        }

                        records.Add(ReadRecord(reader, key, new RowText(reader.GetString(1), reader.GetString(2))));
                    }
                }
                finally
                {
                    get.Transaction = null; // the command is kept with its connection for later reads outside this transaction
                }
            }

            transaction.Commit(); // a read: ends the snapshot
            return records;
        }, cancellationToken);
    }
}

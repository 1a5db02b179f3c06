using System.Buffers;
using System.Globalization;
using System.Text;
using Hypercore.MicroVms;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// The informer's relist in O(changes) (issue 15): the listing reads the key, uid and version columns only, and the
/// spec and status JSON is read and parsed for the rows the caller wants (new or changed ones), not for all 100,000.
/// </summary>
public sealed partial class SqliteMicroVmStore : IVersionListing
{
    private const string ListVersionsSql = "SELECT namespace, id, uid, resource_version FROM microvms ORDER BY namespace, id;";

    public Task<IReadOnlyList<MicroVm>> ListWantedAsync(Func<ListedVersion, bool> wanted, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(wanted);
        return ReadAsync("listing versions", IReadOnlyList<MicroVm> (connection) =>
        {
            // One read transaction for the listing and the reads after it: in WAL mode it reads one snapshot of the
            // database, the one at its first statement, whatever the writer commits meanwhile. A row listed is therefore
            // read at the version listed, and is never found gone.
            using var transaction = connection.BeginTransaction(deferred: true);
            var keys = ListVersions(connection, wanted);
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

    /// <summary>
    /// The listing, through SQLite's own API on the connection (inside its open transaction): each row's text columns are
    /// read as the UTF-8 bytes SQLite holds and decoded into one reused buffer, and the version formatted into it, so a row
    /// makes no object (issue 15, seventh pass: through <see cref="SqliteDataReader.GetString"/>, four strings a row were
    /// ~24 MB a relist at 100,000 records). Strings are made only for the keys <paramref name="wanted"/> asks for.
    /// </summary>
    private static List<VmKey> ListVersions(SqliteConnection connection, Func<ListedVersion, bool> wanted)
    {
        var db = connection.Handle ?? throw new InvalidOperationException("a read connection is not open");
        var keys = new List<VmKey>();
        var statement = ReaderStatement.Prepare(db, ListVersionsSql, connection.DefaultTimeout * 1000);
        int rc;

        var buffer = ArrayPool<char>.Shared.Rent(256);
        try
        {
            using (statement)
            {
                while ((rc = raw.sqlite3_step(statement)) == raw.SQLITE_ROW)
                {
                    var ns = raw.sqlite3_column_blob(statement, 0);
                    var id = raw.sqlite3_column_blob(statement, 1);
                    var uid = raw.sqlite3_column_blob(statement, 2);
                    var version = raw.sqlite3_column_int64(statement, 3);

                    // UTF-8 never takes fewer bytes than UTF-16 chars; a long takes at most 20 chars.
                    var needed = ns.Length + id.Length + uid.Length + 20;
                    if (buffer.Length < needed)
                    {
                        ArrayPool<char>.Shared.Return(buffer);
                        buffer = ArrayPool<char>.Shared.Rent(needed);
                    }

                    var chars = buffer.AsSpan();
                    var nsChars = Encoding.UTF8.GetChars(ns, chars);
                    var idChars = Encoding.UTF8.GetChars(id, chars[nsChars..]);
                    var uidChars = Encoding.UTF8.GetChars(uid, chars[(nsChars + idChars)..]);
                    var rest = chars[(nsChars + idChars + uidChars)..];
                    if (!version.TryFormat(rest, out var versionChars, default, CultureInfo.InvariantCulture))
                    {
                        throw new InvalidOperationException("a version did not fit its buffer");
                    }

                    var listed = new ListedVersion(chars[..nsChars], chars.Slice(nsChars, idChars), chars.Slice(nsChars + idChars, uidChars), rest[..versionChars]);
                    if (wanted(listed))
                    {
                        keys.Add(new VmKey(listed.Namespace.ToString(), listed.Id.ToString()));
                    }
                }

                if (rc != raw.SQLITE_DONE)
                {
                    SqliteException.ThrowExceptionForRC(rc, db);
                }
            }
        }
        finally
        {
            ArrayPool<char>.Shared.Return(buffer);
        }

        return keys;
    }
}

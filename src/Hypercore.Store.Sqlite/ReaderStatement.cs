using System.Data;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// A statement prepared once on a pooled reader connection and run through SQLite's own API (issue 15, fifteenth pass:
/// the reconciler's version check through an ADO.NET command cost a data reader and boxed parameters per call). It
/// keeps the ADO.NET read's rules: a busy or locked database is retried every 150 ms until the connection's timeout,
/// errors are thrown as <see cref="SqliteException"/>, and the statement is finalized when its connection closes (the
/// pool closes a connection it does not keep, a failed read closes its connection, the store's disposal closes all),
/// so it never outlives the connection nor keeps its file open. One user at a time, as its connection.
/// </summary>
internal sealed class ReaderStatement
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;
    private readonly int _timeoutMs;

    private ReaderStatement(SqliteConnection connection, string sql)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("a read connection is not open");
        _timeoutMs = connection.DefaultTimeout * 1000;
        _statement = Prepare(_db, sql, _timeoutMs);
    }

    /// <summary>The connection's statement from <paramref name="table"/>, prepared at its first use there.</summary>
    public static ReaderStatement For(ConditionalWeakTable<SqliteConnection, ReaderStatement> table, SqliteConnection connection, string sql) =>
        table.TryGetValue(connection, out var statement) ? statement : Add(table, connection, sql);

    // Apart from For: its closure would be allocated at every call of a method that captures its parameters.
    private static ReaderStatement Add(ConditionalWeakTable<SqliteConnection, ReaderStatement> table, SqliteConnection connection, string sql)
    {
        var statement = new ReaderStatement(connection, sql);
        table.Add(connection, statement);
        connection.StateChange += (_, e) =>
        {
            // Raised after the connection closed its handle: SQLite keeps a closed connection with a statement left as a
            // "zombie" (file open) until that statement is finalized, which this does.
            if (e.CurrentState == ConnectionState.Closed)
            {
                table.Remove(connection);
                statement._statement.Dispose();
            }
        };
        return statement;
    }

    /// <summary>
    /// Prepares <paramref name="sql"/> on <paramref name="db"/> as an ADO.NET command does: retried while the database is
    /// busy, for <paramref name="busyTimeoutMs"/> (0: no limit); other errors thrown as <see cref="SqliteException"/>.
    /// </summary>
    public static sqlite3_stmt Prepare(sqlite3 db, string sql, int busyTimeoutMs)
    {
        var busy = 0L;
        int rc;
        sqlite3_stmt statement;
        while (IsBusy(rc = raw.sqlite3_prepare_v2(db, sql, out statement)) && StillWaiting(ref busy, busyTimeoutMs))
        {
            statement.Dispose();
        }

        if (rc != raw.SQLITE_OK)
        {
            statement.Dispose();
            SqliteException.ThrowExceptionForRC(rc, db);
        }

        return statement;
    }

    /// <summary>Binds the text of <paramref name="value"/> (SQLite copies it) to the 1-based <paramref name="index"/>.</summary>
    public void BindText(int index, string value) => Check(raw.sqlite3_bind_text16(_statement, index, value.AsSpan()));

    /// <summary>True: a row is there to read until <see cref="Reset"/>; false: no row.</summary>
    public bool Step()
    {
        var busy = 0L;
        int rc;
        while (IsBusy(rc = raw.sqlite3_step(_statement)) && StillWaiting(ref busy, _timeoutMs))
        {
            raw.sqlite3_reset(_statement); // its bindings stay
        }

        if (rc == raw.SQLITE_ROW)
        {
            return true;
        }

        Check(rc);
        return false;
    }

    public long Int64(int column) => raw.sqlite3_column_int64(_statement, column);

    /// <summary>
    /// Ends the statement's read, and with it its read transaction (a statement left stepped would keep its snapshot,
    /// and the WAL it reads from, until its next use). Every use ends with it.
    /// </summary>
    public void Reset() => raw.sqlite3_reset(_statement); // its code repeats the last step's, already reported

    private void Check(int rc)
    {
        if (rc is not (raw.SQLITE_OK or raw.SQLITE_DONE))
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }

    /// <summary>The codes Microsoft.Data.Sqlite retries on.</summary>
    private static bool IsBusy(int rc) => rc is raw.SQLITE_BUSY or raw.SQLITE_LOCKED or raw.SQLITE_LOCKED_SHAREDCACHE;

    /// <summary>As Microsoft.Data.Sqlite waits on a busy database: 150 ms at a time until the timeout (0: no timeout).</summary>
    private static bool StillWaiting(ref long since, int timeoutMs)
    {
        if (since == 0)
        {
            since = Stopwatch.GetTimestamp();
        }
        else if (timeoutMs != 0 && Stopwatch.GetElapsedTime(since).TotalMilliseconds >= timeoutMs)
        {
            return false;
        }

        // The ADO.NET read this replaces slept on the caller's thread here too (the store's reads are synchronous); a busy
        // reader is rare in WAL mode (recovery, or another process holding an exclusive lock).
#pragma warning disable RS0030
        Thread.Sleep(150);
#pragma warning restore RS0030
        return true;
    }
}

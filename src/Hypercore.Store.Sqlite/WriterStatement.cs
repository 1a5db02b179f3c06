using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// A statement prepared once on the writer connection and run through SQLite's own API (issue 15, sixth pass):
/// parameters by position, text bound from spans (SQLite copies them), columns read as spans until the next
/// <see cref="Step"/> or <see cref="Reset"/>. Errors are thrown as <see cref="SqliteException"/>, as the ADO.NET
/// layer throws them. One user at a time (the writer thread). Prepared at its first use, as the ADO.NET commands it
/// replaces were (a daemon that writes nothing holds no prepared statements; preparing all of them at open measured
/// ~1 MB more idle RSS).
/// </summary>
internal sealed class WriterStatement(sqlite3 db, string sql) : IDisposable
{
    private sqlite3_stmt? _prepared;

    private sqlite3_stmt Statement
    {
        get
        {
            if (_prepared is null)
            {
                Check(raw.sqlite3_prepare_v2(db, sql, out var prepared));
                _prepared = prepared;
            }

            return _prepared;
        }
    }

    public void BindText(int index, string value) => Check(raw.sqlite3_bind_text16(Statement, index, value.AsSpan()));

    public void BindUtf8(int index, ReadOnlySpan<byte> utf8) => Check(raw.sqlite3_bind_text(Statement, index, utf8));

    public void BindInt64(int index, long value) => Check(raw.sqlite3_bind_int64(Statement, index, value));

    public void BindNull(int index) => Check(raw.sqlite3_bind_null(Statement, index));

    /// <summary>True: a row is there to read; false: done.</summary>
    public bool Step()
    {
        var rc = raw.sqlite3_step(Statement);
        if (rc == raw.SQLITE_ROW)
        {
            return true;
        }

        Check(rc);
        return false;
    }

    /// <summary>Runs a statement that returns no rows, resets it, and returns the rows it changed.</summary>
    public int Execute()
    {
        try
        {
            while (Step())
            {
            }

            return raw.sqlite3_changes(db);
        }
        finally
        {
            Reset();
        }
    }

    /// <summary>Ready to run again; its bindings stay until replaced (every run binds every parameter).</summary>
    public void Reset() => raw.sqlite3_reset(Statement); // its code repeats the last step's, already reported

    public bool IsNull(int column) => raw.sqlite3_column_type(Statement, column) == raw.SQLITE_NULL;

    public long Int64(int column) => raw.sqlite3_column_int64(Statement, column);

    /// <summary>The column's bytes (UTF-8 for text), valid until the next step or reset.</summary>
    public ReadOnlySpan<byte> Blob(int column) => raw.sqlite3_column_blob(Statement, column);

    public string Text(int column) => Encoding.UTF8.GetString(Blob(column));

    public void Dispose() => _prepared?.Dispose();

    private void Check(int rc)
    {
        if (rc is not (raw.SQLITE_OK or raw.SQLITE_DONE))
        {
            SqliteException.ThrowExceptionForRC(rc, db);
        }
    }
}

using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// Reader connections, kept open between reads. In WAL mode readers never block the writer nor each other. Our
/// own pool instead of the provider's so that disposing the store really closes the file.
/// </summary>
internal sealed class ReadConnectionPool(string connectionString, int maxIdle) : IDisposable
{
    private readonly ConcurrentBag<SqliteConnection> _idle = [];
    private volatile bool _disposed;

    public SqliteConnection Rent()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_idle.TryTake(out var connection))
        {
            return connection;
        }

        connection = new SqliteConnection(connectionString);
        try
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA query_only = ON;";
            command.ExecuteNonQuery();
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    public void Return(SqliteConnection connection)
    {
        if (_disposed || _idle.Count >= maxIdle)
        {
            connection.Dispose();
            return;
        }

        _idle.Add(connection);
        if (_disposed && _idle.TryTake(out var late))
        {
            late.Dispose();
        }
    }

    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryTake(out var connection))
        {
            connection.Dispose();
        }
    }
}

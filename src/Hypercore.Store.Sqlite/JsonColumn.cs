using System.Buffers;
using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// A spec or status column's JSON as the UTF-8 bytes SQLite stores, in a pooled array (issue 15, sixth pass): the writer
/// binds these bytes as the column's text, so a write no longer makes the JSON string (~2 bytes a character) and then
/// SQLite's driver a UTF-8 copy of it (another array) for every spec and status it stores. The bytes are exactly those
/// <see cref="JsonSerializer.Serialize{TValue}(TValue, JsonTypeInfo{TValue})"/> gave as a string, encoded as UTF-8,
/// which is what the column held before (a test compares them).
/// </summary>
internal readonly struct JsonColumn
{
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    private readonly byte[]? _pooled;
    private readonly ReadOnlyMemory<byte> _bytes;

    private JsonColumn(byte[]? pooled, ReadOnlyMemory<byte> bytes)
    {
        _pooled = pooled;
        _bytes = bytes;
        Hash = ColumnHash.Of(bytes.Span);
    }

    public ReadOnlySpan<byte> Utf8 => _bytes.Span;

    public ColumnHash Hash { get; }

    /// <summary>Serializes on the calling thread (a failure is the caller's, as before) into an array rented from the shared pool.</summary>
    public static JsonColumn Serialize<T>(T value, JsonTypeInfo<T> info)
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(2048);
        buffer.ResetWrittenCount();
        var writer = t_writer;
        if (writer is null)
        {
            t_writer = writer = new Utf8JsonWriter(buffer, WriterOptions(info.Options));
        }
        else
        {
            writer.Reset(buffer);
        }

        JsonSerializer.Serialize(writer, value, info);
        writer.Flush();
        var written = buffer.WrittenSpan;
        var pooled = ArrayPool<byte>.Shared.Rent(written.Length);
        written.CopyTo(pooled);
        return new JsonColumn(pooled, pooled.AsMemory(0, written.Length));
    }

    /// <summary>Bytes that are never returned to a pool (e.g. a constant status).</summary>
    public static JsonColumn Fixed(byte[] utf8) => new(null, utf8);

    /// <summary>Gives the array back to the pool. Once only, and only after the last use of <see cref="Utf8"/>.</summary>
    public void Release()
    {
        if (_pooled is not null)
        {
            ArrayPool<byte>.Shared.Return(_pooled);
        }
    }

    /// <summary>What <see cref="JsonSerializer"/> uses when it writes a string (<c>JsonSerializerOptions.GetWriterOptions</c>).</summary>
    private static JsonWriterOptions WriterOptions(JsonSerializerOptions options) => new()
    {
        Encoder = options.Encoder,
        Indented = options.WriteIndented,
        IndentCharacter = options.IndentCharacter,
        IndentSize = options.IndentSize,
        NewLine = options.NewLine,
        MaxDepth = options.MaxDepth,
        SkipValidation = true,
    };
}

/// <summary>
/// A column's text as a 128-bit hash and a length, of its UTF-8 bytes (what SQLite stores and returns). See
/// <see cref="RecentRecords"/> for why a hash and not the text.
/// </summary>
internal readonly record struct ColumnHash(UInt128 Hash, int Length)
{
    public static ColumnHash Of(ReadOnlySpan<byte> utf8) => new(XxHash128.HashToUInt128(utf8), utf8.Length);

    /// <summary>Of a string read through the ADO.NET reader: hashed as the UTF-8 bytes it was read from.</summary>
    public static ColumnHash Of(string text)
    {
        var max = Encoding.UTF8.GetMaxByteCount(text.Length);
        if (max <= 1024)
        {
            Span<byte> small = stackalloc byte[1024];
            return Of(small[..Encoding.UTF8.GetBytes(text, small)]);
        }

        var rented = ArrayPool<byte>.Shared.Rent(max);
        try
        {
            return Of(rented.AsSpan(0, Encoding.UTF8.GetBytes(text, rented)));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}

/// <summary>A row's spec and status columns, hashed.</summary>
internal readonly record struct RowHash(ColumnHash Spec, ColumnHash Status)
{
    public static RowHash Of(RowText text) => new(ColumnHash.Of(text.SpecJson), ColumnHash.Of(text.StatusJson));
}

/// <summary>A row's spec and status columns as read through the ADO.NET reader.</summary>
internal readonly record struct RowText(string SpecJson, string StatusJson);

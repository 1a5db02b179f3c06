using System.Text.Json;
using System.Text.Json.Serialization;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// Issue 15: reads short JSON strings through a small set-associative cache, so that the values repeated in every row
/// (namespace, node, kernel path, provider, condition types, reasons and messages) are one string each in memory
/// instead of one per cached record. A set holds the last four distinct strings that hashed to it, most recently used
/// first: a value seen again while it is still there is shared, and a unique one (an id, a uid) pushes out the least
/// recently used. With one slot per hash (the first version) a single unique value read between two rows could push
/// out a repeated one, and about one List in a hundred lost its sharing; a repeated value now needs four unique
/// values of its own set in between. Strings are immutable, so threads racing on a set only lose sharing, never
/// correctness: whatever a slot holds is compared with the text read before it is returned.
/// </summary>
internal sealed class InterningStringConverter : JsonConverter<string>
{
    private const int MaxBytes = 96;
    private const int Ways = 4;
    private const int Sets = 1024; // a power of two; Sets × Ways slots in all

    private static readonly Entry[] Cache = new Entry[Sets * Ways];

    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName) || reader.ValueIsEscaped || reader.HasValueSequence || reader.ValueSpan.Length > MaxBytes)
        {
            return reader.GetString(); // the built-in behaviour, errors included
        }

        var hasher = new HashCode();
        hasher.AddBytes(reader.ValueSpan);
        var hash = hasher.ToHashCode();
        var set = Cache.AsSpan((hash & (Sets - 1)) * Ways, Ways);
        for (var way = 0; way < Ways; way++)
        {
            var seen = set[way];
            if (seen.Value is null)
            {
                break; // the ways fill from the front, so nothing further on
            }

            // The full hash spares the text comparison (a UTF-16 to UTF-8 transcode) for the other values of the set;
            // a torn read of the pair under a race is caught by that comparison.
            if (seen.Hash == hash && reader.ValueTextEquals(seen.Value))
            {
                MoveToFront(set, way, seen);
                return seen.Value;
            }
        }

        var value = reader.GetString()!;
        MoveToFront(set, Ways - 1, new Entry(value, hash));
        return value;
    }

    // Shifts the ways before `from` one back (dropping what sat at `from`) and puts `entry` first.
    private static void MoveToFront(Span<Entry> set, int from, Entry entry)
    {
        for (var way = from; way > 0; way--)
        {
            set[way] = set[way - 1];
        }

        set[0] = entry;
    }

    private readonly record struct Entry(string? Value, int Hash);

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);

    // Dictionary keys (labels, metadata) go through these once a converter for string is set.
    public override string ReadAsPropertyName(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        Read(ref reader, typeToConvert, options) ?? throw new JsonException("a property name cannot be null");

    public override void WriteAsPropertyName(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WritePropertyName(value);
}

/// <summary>
/// The same JSON shape as <see cref="StoreJsonContext"/>, for reading rows only: strings go through
/// <see cref="InterningStringConverter"/>. Writes keep <see cref="StoreJsonContext"/> and its fast path.
/// </summary>
[JsonSourceGenerationOptions(
    JsonSerializerDefaults.Web,
    UseStringEnumConverter = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    RespectNullableAnnotations = true,
    Converters = [typeof(InterningStringConverter)])]
[JsonSerializable(typeof(MicroVms.MicroVmSpec))]
[JsonSerializable(typeof(MicroVms.MicroVmStatus))]
internal sealed partial class StoreReadJsonContext : JsonSerializerContext;

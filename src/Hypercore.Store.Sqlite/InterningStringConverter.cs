using System.Text.Json;
using System.Text.Json.Serialization;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// Issue 15: reads short JSON strings through a small direct-mapped cache, so that the values repeated in every row
/// (namespace, node, kernel path, provider, condition types, reasons and messages) are one string each in memory
/// instead of one per cached record. A slot holds the last string that hashed to it: a value seen again while it
/// still sits there is shared, a unique one (an id, a uid) simply replaces it. Strings are immutable, so threads
/// racing on a slot only lose sharing, never correctness.
/// </summary>
internal sealed class InterningStringConverter : JsonConverter<string>
{
    private const int MaxBytes = 96;
    private const int Slots = 4096; // a power of two

    private static readonly string?[] Cache = new string?[Slots];

    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName) || reader.ValueIsEscaped || reader.HasValueSequence || reader.ValueSpan.Length > MaxBytes)
        {
            return reader.GetString(); // the built-in behaviour, errors included
        }

        var bytes = reader.ValueSpan;
        var hash = new HashCode();
        hash.AddBytes(bytes);
        ref var slot = ref Cache[hash.ToHashCode() & (Slots - 1)];
        var seen = Volatile.Read(ref slot);
        if (seen is not null && reader.ValueTextEquals(seen))
        {
            return seen;
        }

        var value = reader.GetString()!;
        Volatile.Write(ref slot, value);
        return value;
    }

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
